package config

import (
	"net/url"
	"strings"
)

// SecretValues returns the values of every secret variable that is set (those marked
// Secret in the schema), plus the password inside DATABASE_URL, for the log
// redactor (internal/redact): none of them may appear in a log line.
func (c Config) SecretValues() []string {
	var out []string
	for _, f := range schema {
		if !f.Secret {
			continue
		}
		p, ok := f.ptr(&c).(*string)
		if !ok || *p == "" {
			continue
		}
		out = append(out, *p)
		if f.Name == envDatabaseURL {
			if pw := dsnPassword(*p); pw != "" {
				out = append(out, pw, url.QueryEscape(pw), url.PathEscape(pw))
			}
		}
	}
	return out
}

// dsnPassword is the password of a postgres:// URL or a key=value connection string.
func dsnPassword(dsn string) string {
	if strings.Contains(dsn, "://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return ""
		}
		if pw, ok := u.User.Password(); ok {
			return pw
		}
		return u.Query().Get("password")
	}
	for rest := dsn; rest != ""; {
		rest = strings.TrimLeft(rest, " \t\n")
		k, v, ok := strings.Cut(rest, "=")
		if !ok {
			return ""
		}
		k = strings.TrimSpace(k)
		v = strings.TrimLeft(v, " \t")
		var val string
		if strings.HasPrefix(v, "'") {
			var b strings.Builder
			i := 1
			for ; i < len(v) && v[i] != '\''; i++ {
				if v[i] == '\\' && i+1 < len(v) {
					i++
				}
				b.WriteByte(v[i])
			}
			val, rest = b.String(), v[min(i+1, len(v)):]
		} else {
			end := strings.IndexAny(v, " \t\n")
			if end < 0 {
				end = len(v)
			}
			val, rest = v[:end], v[end:]
		}
		if k == "password" {
			return val
		}
	}
	return ""
}
