package schemas

import "sort"

// AsyncAPIJSON returns the AsyncAPI document as JSON: the same tree as
// AsyncAPI's YAML, for the tests that hold the two equal.
func AsyncAPIJSON() []byte {
	doc, err := asyncAPIDocument()
	if err != nil {
		panic(err)
	}
	return doc.json
}

// RenderAsyncAPI builds the YAML document again, as AsyncAPI did once.
func RenderAsyncAPI() ([]byte, error) {
	doc, err := renderAsyncAPI()
	return doc.yaml, err
}

// YAMLOf renders a tree of maps (keys sorted), slices and scalars as the
// YAML writer renders the document.
func YAMLOf(v any) []byte { return appendYAML(nil, toObject(v)) }

func toObject(v any) any {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		o := object{}
		for _, k := range keys {
			o = append(o, member{k, toObject(v[k])})
		}
		return o
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = toObject(e)
		}
		return out
	}
	return v
}
