// Command argocd-health runs the health checks in a resource_customizations directory (Argo CD's layout:
// <group>/<Kind>/health.lua, health_test.yaml, testdata/*.yaml) with Argo CD's own Lua engine, the
// github.com/argoproj/argo-cd/v3/util/lua package that the application controller uses, and compares
// every case's status and message with what its health_test.yaml expects.
//
// Each case runs twice: with Lua's standard libraries closed, as Argo CD runs a check from argocd-cm
// (unless resource.customizations.useOpenLibs is set), and open, as Argo CD runs its built-in checks.
// Both must give the expected result.
//
// Usage: argocd-health [-kind Kind]... <resource_customizations dir>
//
// One line per case (PASS or FAIL), then "N passed, N failed". Exit status 0 when every case passed, 1 when
// one failed, 2 when the directory or a test file cannot be read, no case ran, or a testdata file is not
// used by any case (so a misspelt -kind or a forgotten case cannot pass).
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	argolua "github.com/argoproj/argo-cd/v3/util/lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

type expected struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

type testCase struct {
	HealthStatus expected `json:"healthStatus"`
	InputPath    string   `json:"inputPath"`
}

type testFile struct {
	Tests []testCase `json:"tests"`
}

type kinds []string

func (k *kinds) String() string     { return strings.Join(*k, ",") }
func (k *kinds) Set(v string) error { *k = append(*k, v); return nil }

func main() {
	var only kinds
	flag.Var(&only, "kind", "run only this kind's checks (repeatable; default: every kind)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: argocd-health [-kind Kind]... <resource_customizations dir>")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	passed, failed, err := run(flag.Arg(0), only)
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(2)
	}
	fmt.Printf("%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		os.Exit(1)
	}
	if passed == 0 {
		fmt.Fprintln(os.Stderr, "error: no case ran (check the directory and -kind)")
		os.Exit(2)
	}
}

// run finds every <group>/<Kind>/health.lua under root and runs its cases.
func run(root string, only kinds) (passed, failed int, err error) {
	scripts, err := filepath.Glob(filepath.Join(root, "*", "*", "health.lua"))
	if err != nil {
		return 0, 0, err
	}
	sort.Strings(scripts)
	found := map[string]bool{}
	for _, script := range scripts {
		dir := filepath.Dir(script)
		kind := filepath.Base(dir)
		group := filepath.Base(filepath.Dir(dir))
		if len(only) > 0 && !contains(only, kind) {
			continue
		}
		found[kind] = true
		p, f, err := runKind(dir, group, kind)
		if err != nil {
			return passed, failed, fmt.Errorf("%s/%s: %w", group, kind, err)
		}
		passed += p
		failed += f
	}
	for _, k := range only {
		if !found[k] {
			return passed, failed, fmt.Errorf("no <group>/%s/health.lua under %s", k, root)
		}
	}
	return passed, failed, nil
}

func runKind(dir, group, kind string) (passed, failed int, err error) {
	script, err := os.ReadFile(filepath.Join(dir, "health.lua"))
	if err != nil {
		return 0, 0, err
	}
	raw, err := os.ReadFile(filepath.Join(dir, "health_test.yaml"))
	if err != nil {
		return 0, 0, err
	}
	var tests testFile
	if err := yaml.UnmarshalStrict(raw, &tests); err != nil {
		return 0, 0, fmt.Errorf("health_test.yaml: %w", err)
	}
	if len(tests.Tests) == 0 {
		return 0, 0, fmt.Errorf("health_test.yaml has no tests")
	}
	used := map[string]bool{}
	for _, tc := range tests.Tests {
		used[filepath.Clean(tc.InputPath)] = true
		name := fmt.Sprintf("%s/%s %s", group, kind, tc.InputPath)
		obj, err := readObject(filepath.Join(dir, tc.InputPath), group, kind)
		if err != nil {
			return passed, failed, fmt.Errorf("%s: %w", tc.InputPath, err)
		}
		if problem := check(obj, string(script), tc.HealthStatus); problem != "" {
			failed++
			fmt.Printf("FAIL %s: %s\n", name, problem)
		} else {
			passed++
			fmt.Printf("PASS %s: %s\n", name, tc.HealthStatus.Status)
		}
	}
	files, err := filepath.Glob(filepath.Join(dir, "testdata", "*.yaml"))
	if err != nil {
		return passed, failed, err
	}
	for _, file := range files {
		rel, _ := filepath.Rel(dir, file)
		if !used[rel] {
			return passed, failed, fmt.Errorf("%s is not used by any case in health_test.yaml", rel)
		}
	}
	return passed, failed, nil
}

// readObject reads a testdata manifest as Argo CD's test does (YAML to a map, as unstructured) and checks
// that it is of the directory's group and kind.
func readObject(path, group, kind string) (*unstructured.Unstructured, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	object := map[string]any{}
	if err := yaml.Unmarshal(raw, &object); err != nil {
		return nil, err
	}
	obj := &unstructured.Unstructured{Object: object}
	gvk := obj.GroupVersionKind()
	if gvk.Group != group || gvk.Kind != kind {
		return nil, fmt.Errorf("is a %s %s, not a %s/%s", obj.GetAPIVersion(), obj.GetKind(), group, kind)
	}
	return obj, nil
}

// check runs the script with the standard libraries closed and open; "" when both give want.
func check(obj *unstructured.Unstructured, script string, want expected) string {
	for _, openLibs := range []bool{false, true} {
		vm := argolua.VM{UseOpenLibs: openLibs}
		got, err := vm.ExecuteHealthLua(obj.DeepCopy(), script)
		libs := "closed"
		if openLibs {
			libs = "open"
		}
		if err != nil {
			return fmt.Sprintf("with the standard libraries %s: the script failed: %v", libs, err)
		}
		if string(got.Status) != want.Status || got.Message != want.Message {
			return fmt.Sprintf("with the standard libraries %s: expected %s %q, got %s %q",
				libs, want.Status, want.Message, got.Status, got.Message)
		}
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
