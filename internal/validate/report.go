// Package validate is `docpipe validate config|deploy|env|db`: checks that run before
// anything is deployed (configuration, deploy files by meaning) and against a live
// environment (preflight, schema drift). Every check is one Check: a name, a verdict,
// the reason, and the fix when it failed, so a person reads one line per check and a
// pipeline reads the same as JSON.
package validate

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// Check is the result of one check.
type Check struct {
	// Name identifies the check, e.g. "config", "deploy/k8s: shared blob store", "env: postgres".
	Name string `json:"name"`
	// OK is the verdict.
	OK bool `json:"ok"`
	// Reason says what was found, pass or fail.
	Reason string `json:"reason"`
	// Fix says what to do about a failure ("" when OK).
	Fix string `json:"fix,omitempty"`
	// Latency is how long a live check took (0 for static checks).
	Latency time.Duration `json:"latency_ns,omitempty"`
}

// Pass and Fail build checks.
func Pass(name, reason string) Check { return Check{Name: name, OK: true, Reason: reason} }

// Fail builds a failed check with the fix a person should apply.
func Fail(name, reason, fix string) Check {
	return Check{Name: name, Reason: reason, Fix: fix}
}

// Report is the outcome of one validate command.
type Report struct {
	Checks []Check `json:"checks"`
}

// Add appends checks.
func (r *Report) Add(c ...Check) { r.Checks = append(r.Checks, c...) }

// OK reports whether every check passed.
func (r *Report) OK() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return true
}

// Failed counts the failed checks.
func (r *Report) Failed() int {
	n := 0
	for _, c := range r.Checks {
		if !c.OK {
			n++
		}
	}
	return n
}

// WriteText prints one line per check: PASS/FAIL, name, reason (and latency for live
// checks), then the fix on an indented line for failures.
func (r *Report) WriteText(w io.Writer) error {
	for _, c := range r.Checks {
		verdict := "PASS"
		if !c.OK {
			verdict = "FAIL"
		}
		line := fmt.Sprintf("%s  %s: %s", verdict, c.Name, c.Reason)
		if c.Latency > 0 {
			line += fmt.Sprintf(" (%s)", c.Latency.Round(100*time.Microsecond))
		}
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
		if !c.OK && c.Fix != "" {
			// A multi-line fix (SQL) stays indented under its check.
			fix := strings.ReplaceAll(c.Fix, "\n", "\n           ")
			if _, err := fmt.Fprintf(w, "      fix: %s\n", fix); err != nil {
				return err
			}
		}
	}
	_, err := fmt.Fprintf(w, "%d checks, %d failed\n", len(r.Checks), r.Failed())
	return err
}

// WriteJSON prints the report as one JSON object: {"ok": bool, "checks": [...]}.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		OK     bool    `json:"ok"`
		Checks []Check `json:"checks"`
	}{r.OK(), r.Checks})
}
