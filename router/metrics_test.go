package router

import (
	"net/http"
	"strings"
	"testing"
)

// TestUnknownRoutesCounted: a request to no route, or with the wrong
// method, shows in switchyard_router_requests_total as endpoint "unknown".
func TestUnknownRoutesCounted(t *testing.T) {
	base := runRouter(t, Config{})
	do(t, http.DefaultClient, "GET", base+"/v2/nothing", "", "")
	do(t, http.DefaultClient, "GET", base+"/wp-login.php", "", "")
	do(t, http.DefaultClient, "GET", base+"/v1/completions", "", "")
	a := do(t, http.DefaultClient, "GET", base+"/metrics", "", "")
	for _, want := range []string{`switchyard_router_requests_total{code="404",endpoint="unknown"} 2`, `switchyard_router_requests_total{code="405",endpoint="unknown"} 1`} {
		if !strings.Contains(a.body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
