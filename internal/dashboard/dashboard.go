// Package dashboard is the operator page served at / by `docpipe serve`: embedded
// files, no CDN, works offline. It talks to the same authenticated API as any client
// (the key or JWT typed into its login form stays in the browser tab's sessionStorage).
package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
	"time"
)

//go:embed static
var files embed.FS

// Handler serves the page at / and its assets under /ui/.
func Handler() http.Handler {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic(err)
	}
	assets := http.StripPrefix("/ui/", http.FileServer(http.FS(sub)))
	index, err := fs.ReadFile(sub, "index.html")
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(index)
	})
	mux.Handle("GET /ui/", assets)
	return mux
}

// PollPaths are the API requests the open page repeats every PollInterval (app.js
// keeps the same list); `docpipe bench --observe` replays them to measure the cost of
// an open dashboard.
var PollPaths = []string{
	"/v1/overview",
	"/v1/documents?limit=50",
	"/v1/alerts",
	"/v1/jobs?state=deadletter&limit=50",
}

// PollInterval is how often the open page refreshes.
const PollInterval = 2 * time.Second
