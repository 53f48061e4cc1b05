package schemas

import (
	"fmt"
	"strings"
)

// The payloads of the AsyncAPI document are the embedded JSON Schemas,
// rewritten into the AsyncAPI Schema format (the document's default, a
// superset of JSON Schema draft 07) so that every AsyncAPI tool and code
// generator reads them without fetching anything:
//
//   - $schema goes (the document says the format), $id becomes the
//     schema's externalDocs link;
//   - $defs move to components.schemas ("ChargeConfirmationAttempt" for
//     charge.json's confirmation_attempt), and every $ref to them, or to
//     another schema file, points there: a "#/$defs/..." left in place
//     would resolve against the AsyncAPI document, not the schema;
//   - a keyword of draft 2020-12 that draft 07 lacks fails the build of
//     the document (TestAsyncAPI), rather than be silently ignored by the
//     tools.
//
// TestAsyncAPIPayloadsValidateLikeTheSchemas holds the result to the
// Validator on the shared vectors and on broken bodies.

// draft2020Only are the keywords that draft 07 does not know or reads
// otherwise.
var draft2020Only = []string{
	"$anchor", "$dynamicAnchor", "$dynamicRef", "$recursiveAnchor", "$recursiveRef", "$vocabulary",
	"prefixItems", "unevaluatedItems", "unevaluatedProperties", "dependentSchemas", "dependentRequired",
	"minContains", "maxContains",
}

// Keywords whose value is a schema, an array of schemas, or an object of
// schemas by name (items is a schema or an array of them); every other
// keyword's value is copied as it is.
var (
	schemaKeywords      = []string{"additionalItems", "additionalProperties", "contains", "propertyNames", "not", "if", "then", "else"}
	schemaListKeywords  = []string{"allOf", "anyOf", "oneOf"}
	schemaByNameKeyword = []string{"properties", "patternProperties", "definitions"}
)

// componentSchemas returns components.schemas: the envelope as Event, then
// for each family its published body (CheckoutEvent), its data
// (CheckoutData) and its definitions.
func componentSchemas() (object, error) {
	files := make(map[string]object)
	for _, name := range Names() {
		raw, err := Files.ReadFile(name + ".json")
		if err != nil {
			return nil, fmt.Errorf("schemas: asyncapi: read %s: %w", name, err)
		}
		v, err := decodeOrdered(raw)
		if err != nil {
			return nil, fmt.Errorf("schemas: asyncapi: parse %s: %w", name, err)
		}
		root, ok := v.(object)
		if !ok {
			return nil, fmt.Errorf("schemas: asyncapi: %s.json is not an object", name)
		}
		files[name] = root
	}
	out := object{}
	addFile := func(name string) error {
		root := files[name]
		conv, err := convertSchema(name, root, true)
		if err != nil {
			return err
		}
		out = append(out, member{dataName(name), named(conv, dataName(name))})
		defs, _ := root.get("$defs")
		defObj, _ := defs.(object)
		for _, d := range defObj {
			conv, err := convertSchema(name, d.value, false)
			if err != nil {
				return fmt.Errorf("%w (in $defs/%s)", err, d.key)
			}
			out = append(out, member{defName(name, d.key), named(conv, defName(name, d.key))})
		}
		return nil
	}
	if err := addFile(EnvelopeName); err != nil {
		return nil, err
	}
	envelope, _ := out.get(dataName(EnvelopeName))
	for _, family := range familyNames() {
		out = append(out, member{eventName(family), familyEvent(family, envelope.(object))})
		if err := addFile(family); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// named gives a converted schema its component name as title, the name
// that code generators give the type they make of it ("CheckoutData", not
// "SenfenicoCheckoutEventData"); the file's title opens the description.
func named(schema any, name string) any {
	o, ok := schema.(object)
	if !ok {
		return schema
	}
	title, _ := o.get("title")
	description, _ := o.get("description")
	if t, _ := title.(string); t != "" {
		if d, _ := description.(string); d != "" {
			t += ". " + d
		}
		o = o.with("description", t)
	}
	return append(object{{"title", name}}, o.without("title")...)
}

// familyEvent is the body published for a family's events: the envelope,
// with data the family's schema.
func familyEvent(family string, envelope object) object {
	props, _ := envelope.get("properties")
	return envelope.
		with("title", eventName(family)).
		with("description", "The body of a routed "+family+".* event: the event name and its data, decoded to a JSON object and described by "+family+".json.").
		with("properties", props.(object).with("data", ref("#/components/schemas/"+dataName(family))))
}

// convertSchema rewrites schema v of file as the package comment says;
// root is true for the file's top level.
func convertSchema(file string, v any, root bool) (any, error) {
	o, ok := v.(object)
	if !ok {
		return v, nil // true, false
	}
	out := object{}
	var id string
	for _, m := range o {
		switch {
		case m.key == "$schema":
		case m.key == "$id" && root:
			id, _ = m.value.(string)
		case m.key == "$defs" && root:
		case m.key == "$id" || m.key == "$defs" || containsString(draft2020Only, m.key):
			return nil, fmt.Errorf("schemas: asyncapi: %s.json: keyword %s is not supported in the AsyncAPI document", file, m.key)
		case m.key == "$ref":
			to, err := componentRef(file, m.value)
			if err != nil {
				return nil, err
			}
			out = append(out, member{m.key, to})
		case m.key == "items" && !isList(m.value) || containsString(schemaKeywords, m.key):
			conv, err := convertSchema(file, m.value, false)
			if err != nil {
				return nil, err
			}
			out = append(out, member{m.key, conv})
		case m.key == "items" || containsString(schemaListKeywords, m.key):
			list, _ := m.value.([]any)
			conv := make([]any, len(list))
			for i, e := range list {
				c, err := convertSchema(file, e, false)
				if err != nil {
					return nil, err
				}
				conv[i] = c
			}
			out = append(out, member{m.key, conv})
		case containsString(schemaByNameKeyword, m.key):
			byName, _ := m.value.(object)
			conv := object{}
			for _, p := range byName {
				c, err := convertSchema(file, p.value, false)
				if err != nil {
					return nil, err
				}
				conv = append(conv, member{p.key, c})
			}
			out = append(out, member{m.key, conv})
		default:
			out = append(out, m)
		}
	}
	if root {
		if id == "" {
			return nil, fmt.Errorf("schemas: asyncapi: %s.json has no $id", file)
		}
		out = append(out, member{"externalDocs", object{
			{"description", "The JSON Schema (draft 2020-12) this is generated from, served by the bridge at " + PathPrefix + file + ".json."},
			{"url", id},
		}})
	}
	return out, nil
}

// componentRef maps a $ref of file ("#/$defs/x", "other.json",
// "other.json#/$defs/x") to its component.
func componentRef(file string, v any) (string, error) {
	to, _ := v.(string)
	target, fragment, _ := strings.Cut(to, "#")
	if target != "" {
		name, ok := strings.CutSuffix(strings.TrimPrefix(target, BaseURL), ".json")
		if !ok || !containsString(Names(), name) {
			return "", fmt.Errorf("schemas: asyncapi: %s.json: $ref %q is not a schema file of this package", file, to)
		}
		file = name
	}
	const prefix = "/components/schemas/"
	switch def, isDef := strings.CutPrefix(fragment, "/$defs/"); {
	case fragment == "":
		return "#" + prefix + dataName(file), nil
	case isDef && def != "" && !strings.Contains(def, "/"):
		return "#" + prefix + defName(file, def), nil
	}
	return "", fmt.Errorf("schemas: asyncapi: %s.json: $ref %q points inside a schema; only whole files and $defs entries can be referenced", file, to)
}

func isList(v any) bool {
	_, ok := v.([]any)
	return ok
}
