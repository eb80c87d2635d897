package validate

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/docpipe/docpipe/internal/config"
)

// The Dockerfile has no Go loader of its own in the ecosystem short of BuildKit's
// frontend (a large module for a dozen instructions), so it is read here: stages,
// ENV (both forms, quotes), ARG defaults in FROM, ENTRYPOINT/CMD (exec and shell
// form), USER, WORKDIR, RUN and COPY --from/--chown, continuation lines.

// dockerfile is a parsed Dockerfile.
type dockerfile struct {
	name   string // relative to Root
	err    error
	stages []*stage
}

// stage is one FROM … section.
type stage struct {
	index           int
	name            string // AS name, "" if none
	from            string // the base image (ARG defaults substituted)
	fromStage       bool   // FROM an earlier stage
	env             map[string]string
	entrypoint, cmd []string
	user, workdir   string
	runs            []string
	copies          []dockerCopy
}

// dockerCopy is a COPY instruction.
type dockerCopy struct {
	from, chown string
	srcs        []string
	dst         string
}

// final is the stage the image is made of.
func (df *dockerfile) final() *stage {
	if len(df.stages) == 0 {
		return &stage{env: map[string]string{}}
	}
	return df.stages[len(df.stages)-1]
}

// dockerfile parses (once) the Dockerfile at path; every Dockerfile read this way is
// checked on its own.
func (d *deployRun) dockerfile(path string) *dockerfile {
	name := d.rel(path)
	if df, ok := d.dockerfiles[name]; ok {
		return df
	}
	df := readDockerfile(path, name)
	d.dockerfiles[name] = df
	return df
}

// readDockerfile parses the Dockerfile at path.
func readDockerfile(path, name string) *dockerfile {
	df := &dockerfile{name: name}
	data, err := os.ReadFile(path)
	if err != nil {
		df.err = err
		return df
	}
	df.stages, df.err = parseDockerfile(string(data))
	return df
}

// parseDockerfile reads every stage of a Dockerfile.
func parseDockerfile(s string) ([]*stage, error) {
	var stages []*stage
	args := map[string]string{} // ARGs before the first FROM, with their defaults
	var cur *stage
	for _, line := range logicalLines(s) {
		word, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		instr := strings.ToUpper(word)
		if cur == nil && instr != "FROM" && instr != "ARG" {
			return nil, fmt.Errorf("%s before the first FROM", instr)
		}
		switch instr {
		case "ARG":
			if cur == nil {
				k, v, _ := strings.Cut(rest, "=")
				args[k] = unquote(v)
			}
		case "FROM":
			f := strings.Fields(rest)
			var from, as string
			for i := 0; i < len(f); i++ {
				switch {
				case strings.HasPrefix(f[i], "--"):
				case strings.EqualFold(f[i], "AS") && i+1 < len(f):
					as = f[i+1]
					i++
				case from == "":
					from = os.Expand(f[i], func(k string) string { return args[k] })
				}
			}
			st := &stage{index: len(stages), name: as, from: from, env: map[string]string{}}
			for _, prev := range stages {
				if prev.name != "" && prev.name == from {
					st.fromStage = true
					for k, v := range prev.env {
						st.env[k] = v
					}
					st.entrypoint, st.cmd, st.user, st.workdir = prev.entrypoint, prev.cmd, prev.user, prev.workdir
				}
			}
			stages = append(stages, st)
			cur = st
		case "ENV":
			words := shellWords(rest)
			if len(words) > 0 && !strings.Contains(words[0], "=") { // legacy form: ENV KEY value with spaces
				cur.env[words[0]] = strings.Join(words[1:], " ")
				continue
			}
			for _, kv := range words {
				if k, v, ok := strings.Cut(kv, "="); ok {
					cur.env[k] = v
				}
			}
		case "ENTRYPOINT":
			cur.entrypoint = execForm(rest)
			cur.cmd = nil // a new ENTRYPOINT resets an inherited CMD
		case "CMD":
			cur.cmd = execForm(rest)
		case "USER":
			cur.user = rest
		case "WORKDIR":
			if path.IsAbs(rest) {
				cur.workdir = path.Clean(rest)
			} else {
				cur.workdir = path.Join("/", cur.workdir, rest)
			}
		case "RUN":
			cur.runs = append(cur.runs, strings.Join(execForm(rest), " "))
		case "COPY":
			c := dockerCopy{}
			var paths []string
			for _, f := range shellWords(rest) {
				switch {
				case strings.HasPrefix(f, "--from="):
					c.from = strings.TrimPrefix(f, "--from=")
				case strings.HasPrefix(f, "--chown="):
					c.chown = strings.TrimPrefix(f, "--chown=")
				case strings.HasPrefix(f, "--"):
				default:
					paths = append(paths, f)
				}
			}
			if len(paths) >= 2 {
				c.srcs, c.dst = paths[:len(paths)-1], paths[len(paths)-1]
			}
			cur.copies = append(cur.copies, c)
		}
	}
	if len(stages) == 0 {
		return nil, fmt.Errorf("no FROM")
	}
	return stages, nil
}

// logicalLines joins continuation lines and drops comments and blank lines.
func logicalLines(s string) []string {
	var out []string
	var cur strings.Builder
	for _, raw := range strings.Split(s, "\n") {
		line := strings.TrimSpace(raw)
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		if l := strings.TrimSpace(cur.String()); l != "" {
			out = append(out, l)
		}
		cur.Reset()
	}
	if l := strings.TrimSpace(cur.String()); l != "" {
		out = append(out, l)
	}
	return out
}

// execForm reads ["a", "b"] (exec form) or a shell-form line.
func execForm(s string) []string {
	var out []string
	if json.Unmarshal([]byte(s), &out) == nil {
		return out
	}
	return shellWords(s)
}

// shellWords splits on blanks outside quotes and removes the quotes.
func shellWords(s string) []string {
	var out []string
	var cur strings.Builder
	in, any := byte(0), false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && in != '\'' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			any = true
		case in != 0 && c == in:
			in = 0
		case in == 0 && (c == '"' || c == '\''):
			in, any = c, true
		case in == 0 && (c == ' ' || c == '\t'):
			if any {
				out = append(out, cur.String())
				cur.Reset()
				any = false
			}
		default:
			cur.WriteByte(c)
			any = true
		}
	}
	if any {
		out = append(out, cur.String())
	}
	return out
}

func unquote(s string) string {
	if u, err := strconv.Unquote(s); err == nil {
		return u
	}
	return strings.Trim(s, "'")
}

// pinned reports whether an image reference names a fixed version: a digest, or a tag
// other than latest.
func pinned(ref string) (bool, string) {
	if strings.Contains(ref, "@sha256:") {
		return true, ""
	}
	name := ref[strings.LastIndex(ref, "/")+1:]
	_, tag, ok := strings.Cut(name, ":")
	switch {
	case ref == "scratch":
		return true, ""
	case !ok || tag == "":
		return false, "has no tag (it means :latest)"
	case tag == "latest":
		return false, "is :latest"
	}
	return true, ""
}

// docpipeImage reports whether an image reference names docpipe's image.
func docpipeImage(ref string) bool {
	repo := ref
	if i := strings.Index(repo, "@"); i >= 0 {
		repo = repo[:i]
	}
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	return repo[strings.LastIndex(repo, "/")+1:] == "docpipe"
}

// binary is the program the image runs ("" when the Dockerfile has no ENTRYPOINT).
func (df *dockerfile) binary() string {
	if e := df.final().entrypoint; len(e) == 1 {
		return e[0]
	}
	return ""
}

// checkDockerfile checks the image itself: what every deploy file relies on (the
// binary as ENTRYPOINT, a non-root user, a CMD that is a real command, ENV the
// config knows, pinned base images) and that pdfium is compiled into the cache at
// build time, where the workers look for it.
func (d *deployRun) checkDockerfile(df *dockerfile) []Check {
	name := df.name + ": image"
	if df.err != nil {
		return []Check{Fail(name, "cannot read: "+df.err.Error(), "fix the Dockerfile")}
	}
	st := df.final()
	var bad []string
	if len(st.entrypoint) != 1 || st.entrypoint[0] != "/docpipe" {
		bad = append(bad, fmt.Sprintf("ENTRYPOINT is %q, and every deploy file passes docpipe's arguments to [\"/docpipe\"]", st.entrypoint))
	}
	uid, _, _ := strings.Cut(st.user, ":")
	if uid == "" || uid == "0" || uid == "root" {
		bad = append(bad, fmt.Sprintf("the final stage runs as %q: it must name a non-root USER (the manifests also set runAsNonRoot)", st.user))
	}
	if len(st.cmd) > 0 {
		if _, err := d.spec.Command(st.cmd); err != nil {
			bad = append(bad, fmt.Sprintf("CMD %q: %v", strings.Join(st.cmd, " "), err))
		}
	}
	keys := sortedKeys(st.env)
	for _, k := range keys {
		if _, ok := config.Lookup(k); !ok {
			bad = append(bad, "ENV "+k+" is not a docpipe setting (docpipe config docs)")
		}
	}
	for _, s := range df.stages {
		if s.fromStage {
			continue
		}
		if ok, why := pinned(s.from); !ok {
			bad = append(bad, fmt.Sprintf("base image %s %s: builds change under you", s.from, why))
		}
	}
	checks := []Check{}
	if len(bad) > 0 {
		checks = append(checks, Fail(name, strings.Join(bad, "; "), "fix the final stage of "+df.name))
	} else {
		checks = append(checks, Pass(name, fmt.Sprintf("ENTRYPOINT /docpipe, USER %s, CMD %q, ENV %s, base images pinned",
			st.user, strings.Join(st.cmd, " "), strings.Join(keys, " "))))
	}
	return append(checks, d.checkWarmup(df))
}

var cacheDirAssign = regexp.MustCompile(`DOCPIPE_CACHE_DIR=(\S+)`)

// checkWarmup checks that `docpipe parse --warmup` runs at build time and that its
// cache ends up in the final image's DOCPIPE_CACHE_DIR, owned by the image's user:
// otherwise each new worker compiles pdfium on its first PDF (4–7 s, ~500 MiB).
func (d *deployRun) checkWarmup(df *dockerfile) Check {
	name := df.name + ": pdfium warm-up"
	final := df.final()
	want := cacheDir(final, "")
	fix := "run `DOCPIPE_CACHE_DIR=/out/cache /out/docpipe parse --warmup` in the build stage and `COPY --from=build --chown=" +
		final.user + " /out/cache " + want + "` in the final one"
	for _, s := range df.stages {
		for _, run := range s.runs {
			i := strings.Index(run, "parse --warmup")
			if i < 0 {
				continue
			}
			var inline string
			if m := cacheDirAssign.FindAllStringSubmatch(run[:i], -1); len(m) > 0 {
				inline = m[len(m)-1][1]
			}
			got := cacheDir(s, inline)
			if s == final {
				if got != want {
					return Fail(name, fmt.Sprintf("the warm-up writes to %s but the image's DOCPIPE_CACHE_DIR is %s", got, want), fix)
				}
				return Pass(name, "`parse --warmup` compiles pdfium into "+want+" in the final stage")
			}
			for _, c := range final.copies {
				if c.from != s.name && c.from != strconv.Itoa(s.index) {
					continue
				}
				if !slices.ContainsFunc(c.srcs, func(src string) bool { return path.Clean(src) == got }) {
					continue
				}
				if path.Clean(c.dst) != want {
					return Fail(name, fmt.Sprintf("the warmed cache %s is copied to %s, but the image's DOCPIPE_CACHE_DIR is %s", got, c.dst, want), fix)
				}
				owner, _, _ := strings.Cut(c.chown, ":")
				user, _, _ := strings.Cut(final.user, ":")
				if owner != user {
					return Fail(name, fmt.Sprintf("the warmed cache is copied to %s owned by %q, not the image's user %q: the worker cannot add to it", want, c.chown, final.user), fix)
				}
				return Pass(name, fmt.Sprintf("`parse --warmup` compiles pdfium into %s at build time; the final stage copies it to DOCPIPE_CACHE_DIR=%s owned by %s", got, want, final.user))
			}
			return Fail(name, fmt.Sprintf("the warm-up writes %s in stage %q, and the final stage does not copy it to DOCPIPE_CACHE_DIR=%s", got, stageName(s), want), fix)
		}
	}
	return Fail(name, "no RUN runs `docpipe parse --warmup`: every new worker compiles pdfium on its first PDF (4–7 s, ~500 MiB)", fix)
}

// cacheDir is where a process in stage s keeps the pdfium cache: DOCPIPE_CACHE_DIR set
// on the RUN line (inline), in the stage's ENV, or the default under WORKDIR.
func cacheDir(s *stage, inline string) string {
	dir := inline
	if dir == "" {
		dir = s.env["DOCPIPE_CACHE_DIR"]
	}
	if dir == "" {
		v, _ := config.Lookup("DOCPIPE_CACHE_DIR")
		dir = v.Default
	}
	if !path.IsAbs(dir) {
		dir = path.Join("/", s.workdir, dir)
	}
	return path.Clean(dir)
}

func stageName(s *stage) string {
	if s.name != "" {
		return s.name
	}
	return strconv.Itoa(s.index)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
