package validate

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	k8sjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// k8sDir is the kustomize base under test, relative to this package.
const k8sDir = "../k8s"

// overlayDir is the example overlay that sets the image and namespace.
const overlayDir = "../overlays/example"

// renderedKinds are the only kinds the base may render. Anything else (a
// stray Secret, an Ingress, a typo in apiVersion) fails the test.
var renderedKinds = map[string]func() any{
	"v1/ServiceAccount":                  func() any { return &corev1.ServiceAccount{} },
	"v1/Namespace":                       func() any { return &corev1.Namespace{} },
	"v1/Service":                         func() any { return &corev1.Service{} },
	"apps/v1/Deployment":                 func() any { return &appsv1.Deployment{} },
	"policy/v1/PodDisruptionBudget":      func() any { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1/NetworkPolicy": func() any { return &networkingv1.NetworkPolicy{} },
}

// object is one strictly decoded manifest.
type object struct {
	Kind string // apiVersion/kind
	Name string
	Obj  any // pointer to the k8s.io/api type
}

// decodeStrict decodes one JSON object into the k8s.io/api type registered
// for its apiVersion/kind. Like the API server's strict field validation,
// keys are case-sensitive and unknown or duplicate fields are errors.
func decodeStrict(data []byte, kinds map[string]func() any) (object, error) {
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(data, &tm); err != nil {
		return object{}, fmt.Errorf("reading apiVersion/kind: %w", err)
	}
	gvk := tm.APIVersion + "/" + tm.Kind
	ref := fmt.Sprintf("%s %q", gvk, tm.Metadata.Name)
	newObj, ok := kinds[gvk]
	if !ok {
		return object{}, fmt.Errorf("%s: unexpected kind %s", ref, gvk)
	}
	obj := newObj()
	strictErrs, err := k8sjson.UnmarshalStrict(data, obj,
		k8sjson.DisallowUnknownFields, k8sjson.DisallowDuplicateFields)
	if err != nil {
		return object{}, fmt.Errorf("%s: %w", ref, err)
	}
	if len(strictErrs) > 0 {
		return object{}, fmt.Errorf("%s: %w", ref, errors.Join(strictErrs...))
	}
	return object{Kind: gvk, Name: tm.Metadata.Name, Obj: obj}, nil
}

// decodeYAMLStrict is decodeStrict for a single YAML document; duplicate
// YAML keys are rejected too.
func decodeYAMLStrict(doc []byte, kinds map[string]func() any) (object, error) {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return object{}, err
	}
	return decodeStrict(j, kinds)
}

// render runs kustomize on dir in fsys and strictly decodes every resource.
func render(fsys filesys.FileSystem, dir string) ([]object, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	var objs []object
	var errs []error
	for _, r := range m.Resources() {
		j, err := r.MarshalJSON()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: marshal: %w", r.CurId(), err))
			continue
		}
		o, err := decodeStrict(j, renderedKinds)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		objs = append(objs, o)
	}
	return objs, errors.Join(errs...)
}

// copyToMemFS copies the files of the real base into an in-memory file
// system under /k8s, applying edit to each file's content (nil: unchanged),
// so negative tests run exactly the real manifests with one defect.
func copyToMemFS(t *testing.T, edit func(name, content string) string) filesys.FileSystem {
	t.Helper()
	entries, err := os.ReadDir(k8sDir)
	if err != nil {
		t.Fatal(err)
	}
	fsys := filesys.MakeFsInMemory()
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(k8sDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		content := string(b)
		if edit != nil {
			content = edit(e.Name(), content)
		}
		if err := fsys.WriteFile("/k8s/"+e.Name(), []byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	return fsys
}

// replaceIn returns an edit func replacing old with new in file name; the
// test fails if old does not occur, so a renamed manifest can't make a
// negative test pass vacuously.
func replaceIn(t *testing.T, name, old, new string) func(string, string) string {
	t.Helper()
	return func(n, content string) string {
		if n != name {
			return content
		}
		if !strings.Contains(content, old) {
			t.Fatalf("%s does not contain %q; update the test", name, old)
		}
		return strings.Replace(content, old, new, 1)
	}
}

func TestStrictDecoderRejectsBadFields(t *testing.T) {
	cases := []struct {
		name, file, old, new, want string
	}{
		{"misspelt replicas", "deployment.yaml", "replicas: 2", "replicass: 2", `unknown field "spec.replicass"`},
		{"wrong case", "deployment.yaml", "readOnlyRootFilesystem: true", "readonlyRootFilesystem: true", "readonlyRootFilesystem"},
		{"misspelt probe field", "deployment.yaml", "path: /readyz", "pth: /readyz", `unknown field`},
		{"misspelt pdb field", "pdb.yaml", "minAvailable: 1", "minAvailabel: 1", `unknown field "spec.minAvailabel"`},
		{"misspelt netpol field", "networkpolicy.yaml", "policyTypes:", "policyType:", `unknown field "spec.policyType"`},
		{"unexpected kind", "service-ops.yaml", "kind: Service", "kind: Endpoints", "unexpected kind v1/Endpoints"},
		{"wrong apiVersion", "pdb.yaml", "apiVersion: policy/v1", "apiVersion: policy/v1beta1", "unexpected kind policy/v1beta1/PodDisruptionBudget"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fsys := copyToMemFS(t, replaceIn(t, tc.file, tc.old, tc.new))
			_, err := render(fsys, "/k8s")
			if err == nil {
				t.Fatalf("render accepted %s with %q", tc.file, tc.new)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
			t.Logf("rejected as expected: %v", err)
		})
	}
}

func TestStrictDecoderRejectsDuplicateYAMLKeys(t *testing.T) {
	doc := []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec:\n  replicas: 2\n  replicas: 3\n")
	if _, err := decodeYAMLStrict(doc, renderedKinds); err == nil {
		t.Fatal("duplicate key accepted")
	}
	ok := []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec:\n  replicas: 2\n")
	if _, err := decodeYAMLStrict(ok, renderedKinds); err != nil {
		t.Fatalf("valid document rejected: %v", err)
	}
}

func TestSecretExampleNotRenderedButValid(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(k8sDir, "secret.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	o, err := decodeYAMLStrict(b, map[string]func() any{"v1/Secret": func() any { return &corev1.Secret{} }})
	if err != nil {
		t.Fatalf("secret.example.yaml: %v", err)
	}
	s := o.Obj.(*corev1.Secret)
	if s.Name != "codewatch" {
		t.Errorf("example Secret is named %q, the Deployment reads %q", s.Name, "codewatch")
	}
	for _, k := range []string{"DATABASE_URL", "SEAM_WEBHOOK_SECRET", "CODEWATCH_OPS_TOKEN", "CODEWATCH_DATA_KEYS"} {
		if _, ok := s.StringData[k]; !ok {
			t.Errorf("secret.example.yaml lacks %s", k)
		}
	}

	kb, err := os.ReadFile(filepath.Join(k8sDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var kust struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(kb, &kust); err != nil {
		t.Fatal(err)
	}
	for _, r := range kust.Resources {
		if strings.Contains(r, "secret") {
			t.Errorf("kustomization.yaml lists %q; secrets must be created out of band", r)
		}
	}
}
