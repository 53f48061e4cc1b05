package schemas

import (
	"bytes"
	"net/http"
	"strings"
	"time"
)

// PathPrefix is the URL path under which Handler serves the schemas.
const PathPrefix = "/schemas/"

// Handler serves GET (and HEAD) /schemas/<name>.json from Files with the
// content type application/schema+json, and 404 for any other path under
// it. It expects the full request path, so mount it without StripPrefix:
// mux.Handle("GET /schemas/", schemas.Handler()). It is safe for concurrent
// use.
func Handler() http.Handler {
	files := make(map[string][]byte)
	for _, name := range Names() {
		raw, err := Files.ReadFile(name + ".json")
		if err != nil {
			panic("schemas: read embedded " + name + ": " + err.Error())
		}
		files[name+".json"] = raw
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		// Only exact names from the embedded set are served, so "../"
		// and encoded variants never reach a file system.
		name, ok := strings.CutPrefix(r.URL.Path, PathPrefix)
		raw, found := files[name]
		if !ok || !found {
			http.NotFound(w, r)
			return
		}
		serve(w, r, name, "application/schema+json", raw)
	})
}

// AsyncAPIHandler serves GET (and HEAD) of the AsyncAPI document (AsyncAPI)
// with the content type application/yaml, as Handler serves the schemas.
// Mount it at AsyncAPIPath: mux.Handle("GET "+schemas.AsyncAPIPath,
// schemas.AsyncAPIHandler()). It is safe for concurrent use.
func AsyncAPIHandler() http.Handler {
	doc := AsyncAPI()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if r.URL.Path != AsyncAPIPath {
			http.NotFound(w, r)
			return
		}
		serve(w, r, AsyncAPIPath, "application/yaml", doc)
	})
}

// serve answers with one embedded document. Its bytes are fixed for the
// life of the binary, so there is no modification time to send;
// ServeContent still answers Range and HEAD requests.
func serve(w http.ResponseWriter, r *http.Request, name, contentType string, raw []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(raw))
}
