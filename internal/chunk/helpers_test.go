package chunk

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// Minimal assertion helpers (the module's go.sum lacks testify's
// dependencies). expect reports and continues; must stops the test.
type checker struct{ fatal bool }

var (
	expect = checker{}
	must   = checker{fatal: true}
)

func (c checker) fail(t testing.TB, what string, msg []any) bool {
	t.Helper()
	if len(msg) > 0 {
		if f, ok := msg[0].(string); ok {
			what += ": " + fmt.Sprintf(f, msg[1:]...)
		}
	}
	if c.fatal {
		t.Fatal(what)
	}
	t.Error(what)
	return false
}

func (c checker) True(t testing.TB, ok bool, msg ...any) bool {
	t.Helper()
	if ok {
		return true
	}
	return c.fail(t, "expected true", msg)
}

func (c checker) False(t testing.TB, v bool, msg ...any) bool {
	t.Helper()
	return c.True(t, !v, msg...)
}

func (c checker) Equal(t testing.TB, want, got any, msg ...any) bool {
	t.Helper()
	if reflect.DeepEqual(want, got) {
		return true
	}
	return c.fail(t, fmt.Sprintf("not equal:\nwant %#v\n got %#v", want, got), msg)
}

func (c checker) NoError(t testing.TB, err error, msg ...any) bool {
	t.Helper()
	if err == nil {
		return true
	}
	return c.fail(t, "unexpected error: "+err.Error(), msg)
}

func (c checker) Error(t testing.TB, err error, msg ...any) bool {
	t.Helper()
	if err != nil {
		return true
	}
	return c.fail(t, "expected an error", msg)
}

func (c checker) Zero(t testing.TB, v any, msg ...any) bool {
	t.Helper()
	if reflect.ValueOf(v).IsZero() {
		return true
	}
	return c.fail(t, fmt.Sprintf("expected zero, got %#v", v), msg)
}

func (c checker) NotNil(t testing.TB, v any, msg ...any) bool {
	t.Helper()
	if rv := reflect.ValueOf(v); v != nil && !(rv.Kind() == reflect.Slice && rv.IsNil()) {
		return true
	}
	return c.fail(t, "expected non-nil", msg)
}

func (c checker) Len(t testing.TB, v any, n int, msg ...any) bool {
	t.Helper()
	if l := reflect.ValueOf(v).Len(); l != n {
		return c.fail(t, fmt.Sprintf("length %d, want %d", l, n), msg)
	}
	return true
}

func (c checker) Empty(t testing.TB, v any, msg ...any) bool {
	t.Helper()
	if l := reflect.ValueOf(v).Len(); l != 0 {
		return c.fail(t, fmt.Sprintf("expected empty, got length %d", l), msg)
	}
	return true
}

func (c checker) NotEmpty(t testing.TB, v any, msg ...any) bool {
	t.Helper()
	if reflect.ValueOf(v).Len() == 0 {
		return c.fail(t, "expected non-empty", msg)
	}
	return true
}

func (c checker) Contains(t testing.TB, s, sub string, msg ...any) bool {
	t.Helper()
	if strings.Contains(s, sub) {
		return true
	}
	return c.fail(t, fmt.Sprintf("%q does not contain %q", s, sub), msg)
}

func (c checker) NotContains(t testing.TB, s, sub string, msg ...any) bool {
	t.Helper()
	if !strings.Contains(s, sub) {
		return true
	}
	return c.fail(t, fmt.Sprintf("%q contains %q", s, sub), msg)
}

func (c checker) Regexp(t testing.TB, re, s string, msg ...any) bool {
	t.Helper()
	if regexp.MustCompile(re).MatchString(s) {
		return true
	}
	return c.fail(t, fmt.Sprintf("%q does not match %s", s, re), msg)
}

func (c checker) cmp(t testing.TB, a, b int, ok bool, op string, msg []any) bool {
	t.Helper()
	if ok {
		return true
	}
	return c.fail(t, fmt.Sprintf("expected %d %s %d", a, op, b), msg)
}

func (c checker) Greater(t testing.TB, a, b int, msg ...any) bool {
	t.Helper()
	return c.cmp(t, a, b, a > b, ">", msg)
}

func (c checker) GreaterOrEqual(t testing.TB, a, b int, msg ...any) bool {
	t.Helper()
	return c.cmp(t, a, b, a >= b, ">=", msg)
}

func (c checker) Less(t testing.TB, a, b int, msg ...any) bool {
	t.Helper()
	return c.cmp(t, a, b, a < b, "<", msg)
}

func (c checker) LessOrEqual(t testing.TB, a, b int, msg ...any) bool {
	t.Helper()
	return c.cmp(t, a, b, a <= b, "<=", msg)
}
