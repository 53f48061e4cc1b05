// Package check decodes rendered Kubernetes manifests strictly against the
// API types, so that a misspelt or misplaced field in the Helm chart fails
// the tests instead of being dropped by the API server at install time.
//
// It lives in a module of its own so that k8s.io/api and its dependencies
// stay out of the bridge's go.mod.
package check

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	kyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// Object is one decoded manifest.
type Object struct {
	// Source is the "# Source:" line helm template writes above it.
	Source string
	Kind   schema.GroupVersionKind
	Object runtime.Object
}

// scheme knows every kind the chart may render; any other kind is an error,
// so a new template cannot slip past the check undecoded.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme,
		appsv1.AddToScheme,
		policyv1.AddToScheme,
		monitoringv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}()

// strict refuses unknown and duplicate fields, as kubectl's
// --validate=strict does on the server side.
var strict = kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme,
	kjson.SerializerOptions{Yaml: true, Strict: true})

// Decode splits a multi-document YAML stream, as helm template prints it,
// and decodes each non-empty document strictly. It returns every failure,
// each naming the template it came from.
func Decode(manifests []byte) ([]Object, error) {
	reader := kyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(manifests)))
	var (
		objects []Object
		errs    []error
	)
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return objects, fmt.Errorf("split documents: %w", err)
		}
		source := sourceOf(doc)
		if isEmpty(doc) {
			continue
		}
		obj, gvk, err := strict.Decode(doc, nil, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", source, err))
			continue
		}
		objects = append(objects, Object{Source: source, Kind: *gvk, Object: obj})
	}
	return objects, errors.Join(errs...)
}

// sourceOf returns the template named by helm's "# Source:" comment.
func sourceOf(doc []byte) string {
	for line := range bytes.Lines(doc) {
		if rest, ok := bytes.CutPrefix(bytes.TrimSpace(line), []byte("# Source: ")); ok {
			return string(rest)
		}
	}
	return "(no source)"
}

// isEmpty reports whether doc holds only comments and blank lines (a
// template that rendered nothing).
func isEmpty(doc []byte) bool {
	for line := range bytes.Lines(doc) {
		line = bytes.TrimSpace(line)
		if len(line) > 0 && line[0] != '#' && !bytes.Equal(line, []byte("---")) {
			return false
		}
	}
	return true
}
