package httpapi

import (
	"bytes"
	"html/template"
	"net/http"
	"strconv"
)

var statusPage = template.Must(template.New("status").Parse(`<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>tcs agent {{.Name}}</title></head>
<body>
<h1>tcs agent {{.Name}}</h1>
<p>Ready: {{if .Ready}}yes{{else}}no ({{.Why}}){{end}}. Fenced: {{if .Fenced}}yes{{else}}no{{end}}.</p>
<ul>
<li><a href="/v1/smartsets">/v1/smartsets</a>: every SmartSet, its owner and state (JSON; <a href="/v1/smartsets?format=csv">CSV</a>)</li>
<li><a href="/healthz">/healthz</a>: the process is alive</li>
<li><a href="/readyz">/readyz</a>: registered and watching the directory</li>
<li><a href="/metrics">/metrics</a>: Prometheus metrics</li>
</ul>
</body>
</html>
`))

// serveStatusPage is the built-in page at "/": the agent's name, whether
// it is ready and fenced, and links to the other routes.
func (s *Server) serveStatusPage(w http.ResponseWriter, r *http.Request) {
	ready, why := s.sw.Ready()
	var buf bytes.Buffer
	err := statusPage.Execute(&buf, struct {
		Name          string
		Ready, Fenced bool
		Why           string
	}{s.sw.Name(), ready, s.sw.Fenced(), why})
	if err != nil {
		s.writeError(w, r, &apiError{code: http.StatusInternalServerError, msg: "cannot render the status page"})
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(buf.Bytes())
	}
}
