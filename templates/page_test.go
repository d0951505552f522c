package templates

import (
	"reflect"
	"testing"
	"time"
)

// TestPageHasEveryViewField: templates see a page, which repeats View's fields; a field added to
// View must reach the templates too, with its value.
func TestPageHasEveryViewField(t *testing.T) {
	vt, pt := reflect.TypeFor[View](), reflect.TypeFor[page]()
	for i := range vt.NumField() {
		f := vt.Field(i)
		pf, ok := pt.FieldByName(f.Name)
		switch {
		case !ok:
			t.Errorf("page lacks View.%s", f.Name)
		case pf.Type != f.Type:
			t.Errorf("page.%s is %s, View.%s is %s", f.Name, pf.Type, f.Name, f.Type)
		}
	}
	for i := range pt.NumField() {
		if pt.Field(i).Anonymous {
			t.Errorf("page.%s is embedded: text/template would search it on every field lookup", pt.Field(i).Name)
		}
	}

	var v View
	fill(reflect.ValueOf(&v).Elem(), time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC))
	v.Location = time.FixedZone("X", 3600)
	vv, p := reflect.ValueOf(v), reflect.ValueOf(newPage(v, "de")).Elem()
	for i := range vt.NumField() {
		name := vt.Field(i).Name
		if vv.Field(i).IsZero() {
			t.Fatalf("fill left View.%s zero: the test cannot tell whether newPage copies it", name)
		}
		if got := p.FieldByName(name); got.IsValid() && !reflect.DeepEqual(got.Interface(), vv.Field(i).Interface()) {
			t.Errorf("newPage does not copy View.%s: got %v, want %v", name, got.Interface(), vv.Field(i).Interface())
		}
	}
	if got := p.FieldByName("Lang").String(); got != "de" {
		t.Errorf("newPage Lang = %q, want de", got)
	}
}
