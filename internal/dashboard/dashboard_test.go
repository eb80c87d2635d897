package dashboard

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// The page and its assets are served from the binary and load nothing from elsewhere.
func TestServedOfflineWithoutExternalReferences(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	external := regexp.MustCompile(`(?i)(src|href)\s*=\s*"(https?:)?//|fetch\(\s*"https?:|@import`)
	for _, path := range []string{"/", "/ui/app.js", "/ui/style.css"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(body) == 0 {
			t.Fatalf("%s: HTTP %d", path, resp.StatusCode)
		}
		if m := external.Find(body); m != nil {
			t.Errorf("%s loads something from elsewhere: %s", path, m)
		}
	}
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
}
