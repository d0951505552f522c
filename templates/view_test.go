package templates

import (
	"reflect"
	"testing"
	"time"
)

// TestInLocationCoversEveryTime fills every time in a View, through pointers and slices, and
// checks that inLocation moved each one, so a time field added later cannot be forgotten.
func TestInLocationCoversEveryTime(t *testing.T) {
	utc := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	zone := time.FixedZone("X", 5*3600)
	var v View
	fill(reflect.ValueOf(&v).Elem(), utc)
	v.Location = zone
	got := inLocation(v)
	n := 0
	visit(reflect.ValueOf(got), func(path string, tm time.Time) {
		n++
		if tm.Location() != zone || !tm.Equal(utc) {
			t.Errorf("%s = %v, want %v in zone X", path, tm, utc)
		}
	}, "View")
	if n < 10 {
		t.Errorf("only %d times visited", n)
	}
	// The caller's view is untouched.
	visit(reflect.ValueOf(v), func(path string, tm time.Time) {
		if tm.Location() != time.UTC {
			t.Errorf("caller's %s was modified", path)
		}
	}, "View")
}

var timeType = reflect.TypeFor[time.Time]()

// fill sets every time.Time reachable from v to at, and every string, int, bool and map to a
// non-zero value, allocating pointers, one-element slices and one-entry maps.
func fill(v reflect.Value, at time.Time) {
	switch {
	case v.Type() == timeType:
		v.Set(reflect.ValueOf(at))
	case v.Kind() == reflect.Pointer && v.Type().Elem() == timeType:
		p := reflect.New(timeType)
		p.Elem().Set(reflect.ValueOf(at))
		v.Set(p)
	case v.Kind() == reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), at)
			}
		}
	case v.Kind() == reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fill(s.Index(0), at)
		v.Set(s)
	case v.Kind() == reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, at)
		fill(e, at)
		m.SetMapIndex(k, e)
		v.Set(m)
	case v.Kind() == reflect.String:
		v.SetString("x")
	case v.Kind() == reflect.Int || v.Kind() == reflect.Int64:
		v.SetInt(7)
	case v.Kind() == reflect.Bool:
		v.SetBool(true)
	}
}

// visit calls f for every time.Time reachable from v.
func visit(v reflect.Value, f func(string, time.Time), path string) {
	switch {
	case v.Type() == timeType:
		f(path, v.Interface().(time.Time))
	case v.Kind() == reflect.Pointer && v.Type().Elem() == timeType:
		if !v.IsNil() {
			f(path, v.Elem().Interface().(time.Time))
		}
	case v.Kind() == reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				visit(v.Field(i), f, path+"."+v.Type().Field(i).Name)
			}
		}
	case v.Kind() == reflect.Slice:
		for i := range v.Len() {
			visit(v.Index(i), f, path+"[]")
		}
	}
}
