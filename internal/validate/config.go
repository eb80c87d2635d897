package validate

import (
	"fmt"

	"github.com/docpipe/docpipe/internal/config"
)

// Config checks an environment (os.Getenv, or a deploy file's service env) through
// config.Load: one failed check per problem, or one passing check.
func Config(name string, getenv func(string) string) []Check {
	_, problems := config.Load(getenv)
	if len(problems) == 0 {
		return []Check{Pass(name, fmt.Sprintf("all %d settings valid", len(config.Vars())))}
	}
	out := make([]Check, 0, len(problems))
	for _, p := range problems {
		fix := "set " + p.Var + " to a valid value"
		if v, ok := config.Lookup(p.Var); ok {
			fix += " (" + v.Doc + ")"
		}
		out = append(out, Fail(name, p.Message, fix))
	}
	return out
}
