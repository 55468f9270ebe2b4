package validate

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

const (
	publicPort = 8080
	opsPort    = 9090
	// defaultShutdownTimeout is codewatch's CODEWATCH_SHUTDOWN_TIMEOUT default.
	defaultShutdownTimeout = 20 * time.Second
	// graceMargin is the minimum slack between the app's own shutdown bound
	// and the kubelet's SIGKILL.
	graceMargin = 5 * time.Second
)

func TestK8sBase(t *testing.T) {
	objs, err := render(filesys.MakeFsOnDisk(), k8sDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range checkInvariants(objs) {
		t.Error(err)
	}
}

// The example overlay renders, keeps every invariant, sets an image a
// registry can have (not the base's codewatch:latest) and a namespace.
func TestK8sExampleOverlay(t *testing.T) {
	objs, err := render(filesys.MakeFsOnDisk(), overlayDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range checkInvariants(objs) {
		t.Error(err)
	}
	var images []string
	for _, o := range objs {
		if m, ok := o.Obj.(interface{ GetNamespace() string }); ok && o.Kind != "v1/Namespace" && m.GetNamespace() != "codewatch" {
			t.Errorf("%s %s is not in the namespace codewatch", o.Kind, o.Name)
		}
		if d, ok := o.Obj.(*appsv1.Deployment); ok {
			for _, c := range d.Spec.Template.Spec.Containers {
				images = append(images, c.Image)
			}
		}
	}
	if len(images) != 1 || strings.HasPrefix(images[0], "codewatch:") || !strings.Contains(images[0], "/") {
		t.Errorf("overlay images %v, want one image from a registry", images)
	}
}

// TestInvariantChecksCatchDefects proves checkInvariants is not vacuous: each
// edit to the real base must produce at least one matching error.
func TestInvariantChecksCatchDefects(t *testing.T) {
	cases := []struct {
		name, file, old, new, want string
	}{
		{"one replica", "deployment.yaml", "replicas: 2", "replicas: 1", "replicas"},
		{"grace too short", "deployment.yaml", "terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds: 20", "terminationGracePeriodSeconds"},
		{"readiness wrong path", "deployment.yaml", "path: /readyz", "path: /ready", "readinessProbe"},
		{"ops on loopback", "deployment.yaml", `value: ":9090"`, `value: "127.0.0.1:9090"`, "CODEWATCH_OPS_LISTEN"},
		{"no memory limit", "deployment.yaml", "memory: 256Mi", "ephemeral-storage: 256Mi", "limits"},
		{"root allowed", "deployment.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", "readOnlyRootFilesystem"},
		{"ops service public", "service-ops.yaml", "type: ClusterIP", "type: LoadBalancer", "ClusterIP"},
		{"public service targets ops", "service.yaml", "targetPort: http", "targetPort: ops", "public"},
		{"pdb blocks drains", "pdb.yaml", "minAvailable: 1", "minAvailable: 2", "minAvailable"},
		{"data keys optional", "deployment.yaml", "                  key: CODEWATCH_DATA_KEYS\n", "                  key: CODEWATCH_DATA_KEYS\n                  optional: true\n", "CODEWATCH_DATA_KEYS"},
		{"data keys from another key", "deployment.yaml", "                  key: CODEWATCH_DATA_KEYS\n", "                  key: DATA_KEYS\n", "CODEWATCH_DATA_KEYS"},
		{"ops port open to all", "networkpolicy.yaml", "    - from:\n", "    - ports:\n        - port: 9090\n    - from:\n", "9090"},
		{"ops open to all namespaces", "networkpolicy.yaml", "kubernetes.io/metadata.name: monitoring", "{}", "9090"},
		{"rule without ports", "networkpolicy.yaml", "  ingress:\n    - ports:\n        - port: 8080\n          protocol: TCP\n", "  ingress:\n    - {}\n", "9090"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fsys := copyToMemFS(t, replaceIn(t, tc.file, tc.old, tc.new))
			objs, err := render(fsys, "/k8s")
			if err != nil {
				t.Fatalf("mutated base does not even decode: %v", err)
			}
			errs := checkInvariants(objs)
			if len(errs) == 0 {
				t.Fatalf("no invariant failed after %s: %q -> %q", tc.file, tc.old, tc.new)
			}
			joined := errors.Join(errs...).Error()
			if !strings.Contains(joined, tc.want) {
				t.Fatalf("errors do not mention %q:\n%s", tc.want, joined)
			}
		})
	}
}

// checkInvariants returns every violated deployment invariant.
func checkInvariants(objs []object) []error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	var (
		deps     []*appsv1.Deployment
		services []*corev1.Service
		pdbs     []*policyv1.PodDisruptionBudget
		netpols  []*networkingv1.NetworkPolicy
	)
	for _, o := range objs {
		switch v := o.Obj.(type) {
		case *appsv1.Deployment:
			deps = append(deps, v)
		case *corev1.Service:
			services = append(services, v)
		case *policyv1.PodDisruptionBudget:
			pdbs = append(pdbs, v)
		case *networkingv1.NetworkPolicy:
			netpols = append(netpols, v)
		case *corev1.ServiceAccount, *corev1.Namespace:
		default:
			fail("%s %q: no invariants defined for this kind", o.Kind, o.Name)
		}
	}
	if len(deps) != 1 {
		fail("want exactly 1 Deployment, got %d", len(deps))
		return errs
	}
	d := deps[0]
	podLabels := labels.Set(d.Spec.Template.Labels)

	errs = append(errs, checkDeployment(d)...)
	c := findContainer(d)
	if c == nil {
		return errs
	}

	// Services: exactly one public (8080, never 9090) and one ClusterIP ops (9090 only).
	if len(services) != 2 {
		fail("want 2 Services (public %d, ops %d), got %d", publicPort, opsPort, len(services))
	}
	var public, ops *corev1.Service
	for _, s := range services {
		if !selectorMatches(&metav1.LabelSelector{MatchLabels: s.Spec.Selector}, podLabels) {
			fail("Service %q selector %v does not select the codewatch pods", s.Name, s.Spec.Selector)
		}
		targets := map[int32]bool{}
		for _, p := range s.Spec.Ports {
			tp := p.TargetPort
			if tp.Type == intstr.Int && tp.IntVal == 0 {
				tp = intstr.FromInt32(p.Port)
			}
			cp, ok := resolvePort(c, tp)
			if !ok {
				fail("Service %q port %d targets %q, which is not a container port", s.Name, p.Port, tp.String())
			}
			targets[cp] = true
		}
		switch {
		case targets[opsPort] && targets[publicPort]:
			fail("Service %q exposes both the public and the ops port; the public Service must not carry %d", s.Name, opsPort)
		case targets[opsPort]:
			ops = s
		case targets[publicPort]:
			public = s
		}
	}
	if public == nil {
		fail("no public Service targeting container port %d", publicPort)
	}
	if ops == nil {
		fail("no ops Service targeting container port %d", opsPort)
	} else {
		if ops.Spec.Type != corev1.ServiceTypeClusterIP {
			fail("ops Service %q must be type ClusterIP, got %q", ops.Name, ops.Spec.Type)
		}
		if len(ops.Spec.Ports) != 1 {
			fail("ops Service %q should carry only port %d", ops.Name, opsPort)
		}
	}

	// PodDisruptionBudget.
	if len(pdbs) != 1 {
		fail("want 1 PodDisruptionBudget, got %d", len(pdbs))
	}
	for _, p := range pdbs {
		if !selectorMatches(p.Spec.Selector, podLabels) {
			fail("PodDisruptionBudget %q does not select the codewatch pods", p.Name)
		}
		ma := p.Spec.MinAvailable
		switch {
		case ma == nil || ma.Type != intstr.Int:
			fail("PodDisruptionBudget %q: want integer minAvailable", p.Name)
		case ma.IntVal < 1:
			fail("PodDisruptionBudget %q: minAvailable %d protects nothing", p.Name, ma.IntVal)
		case d.Spec.Replicas != nil && ma.IntVal >= *d.Spec.Replicas:
			fail("PodDisruptionBudget %q: minAvailable %d >= replicas %d blocks node drains", p.Name, ma.IntVal, *d.Spec.Replicas)
		}
	}

	// NetworkPolicy.
	errs = append(errs, checkNetworkPolicies(netpols, podLabels, c)...)
	return errs
}

func findContainer(d *appsv1.Deployment) *corev1.Container {
	for i := range d.Spec.Template.Spec.Containers {
		if d.Spec.Template.Spec.Containers[i].Name == "codewatch" {
			return &d.Spec.Template.Spec.Containers[i]
		}
	}
	return nil
}

func checkDeployment(d *appsv1.Deployment) []error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("Deployment %q: "+format, append([]any{d.Name}, args...)...))
	}
	spec := d.Spec.Template.Spec

	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		fail("want replicas 2, got %v", ptrStr(d.Spec.Replicas))
	}
	if !selectorMatches(d.Spec.Selector, labels.Set(d.Spec.Template.Labels)) {
		fail("selector does not match the pod template labels")
	}
	ann := d.Spec.Template.Annotations
	for k, want := range map[string]string{
		"prometheus.io/scrape": "true",
		"prometheus.io/port":   fmt.Sprint(opsPort),
		"prometheus.io/path":   "/metrics",
	} {
		if ann[k] != want {
			fail("pod annotation %s = %q, want %q", k, ann[k], want)
		}
	}

	c := findContainer(d)
	if c == nil {
		fail("no container named codewatch")
		return errs
	}
	if len(c.Command) > 0 {
		fail("command overrides the image ENTRYPOINT")
	}
	if len(c.Args) > 0 && c.Args[0] != "serve" {
		fail("args %v: want serve", c.Args)
	}
	for _, p := range []int32{publicPort, opsPort} {
		if _, ok := resolvePort(c, intstr.FromInt32(p)); !ok {
			fail("containerPort %d not declared", p)
		}
	}

	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
		switch e.Name {
		case "DATABASE_URL", "SEAM_WEBHOOK_SECRET", "CODEWATCH_OPS_TOKEN", "CODEWATCH_ALERT_WEBHOOK_SECRET", "CODEWATCH_SLACK_WEBHOOK_URL",
			"CODEWATCH_DATA_KEYS":
			if e.Value != "" {
				fail("env %s has a literal value; secrets belong in the Secret", e.Name)
			}
		}
	}
	// The data keys come from the Secret, required: without them serve
	// refuses to start.
	dataKeys := false
	for _, e := range c.Env {
		if e.Name == "CODEWATCH_DATA_KEYS" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			ref := e.ValueFrom.SecretKeyRef
			dataKeys = ref.Name == "codewatch" && ref.Key == "CODEWATCH_DATA_KEYS" && (ref.Optional == nil || !*ref.Optional)
		}
	}
	if !dataKeys {
		fail("CODEWATCH_DATA_KEYS must come from key CODEWATCH_DATA_KEYS of Secret codewatch (secretKeyRef, not optional)")
	}
	// The binary defaults to 127.0.0.1:9090, which kubelet probes and
	// Prometheus cannot reach.
	if v := env["CODEWATCH_OPS_LISTEN"]; v != fmt.Sprintf(":%d", opsPort) && v != fmt.Sprintf("0.0.0.0:%d", opsPort) {
		fail("CODEWATCH_OPS_LISTEN = %q, want \":%d\"", v, opsPort)
	}
	if v, ok := env["CODEWATCH_LISTEN"]; ok && !strings.HasSuffix(v, fmt.Sprintf(":%d", publicPort)) {
		fail("CODEWATCH_LISTEN = %q, want port %d", v, publicPort)
	}
	hasSecret := false
	for _, ef := range c.EnvFrom {
		if ef.SecretRef != nil && ef.SecretRef.Name == "codewatch" {
			hasSecret = true
			if ef.SecretRef.Optional != nil && *ef.SecretRef.Optional {
				fail("envFrom Secret codewatch must not be optional")
			}
		}
	}
	if !hasSecret {
		fail("no envFrom secretRef codewatch")
	}

	// Graceful shutdown must finish before SIGKILL.
	shutdown := defaultShutdownTimeout
	if v, ok := env["CODEWATCH_SHUTDOWN_TIMEOUT"]; ok {
		dur, err := time.ParseDuration(v)
		if err != nil {
			fail("CODEWATCH_SHUTDOWN_TIMEOUT %q: %v", v, err)
		} else {
			shutdown = dur
		}
	}
	if v, ok := env["CODEWATCH_SHUTDOWN_DRAIN"]; ok {
		dur, err := time.ParseDuration(v)
		if err != nil {
			fail("CODEWATCH_SHUTDOWN_DRAIN %q: %v", v, err)
		} else {
			shutdown += dur
		}
	}
	grace := 30 * time.Second // Kubernetes default
	if spec.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
	}
	if grace < shutdown+graceMargin {
		fail("terminationGracePeriodSeconds %s < CODEWATCH_SHUTDOWN_DRAIN + CODEWATCH_SHUTDOWN_TIMEOUT (%s) + %s", grace, shutdown, graceMargin)
	}

	// Probes: liveness /healthz and readiness /readyz, both on the ops port.
	checkProbe := func(kind string, p *corev1.Probe, path string) {
		if p == nil || p.HTTPGet == nil {
			fail("%s: want httpGet %s on port %d", kind, path, opsPort)
			return
		}
		if p.HTTPGet.Path != path {
			fail("%s: path %q, want %q", kind, p.HTTPGet.Path, path)
		}
		if port, ok := resolvePort(c, p.HTTPGet.Port); !ok || port != opsPort {
			fail("%s: port %s does not resolve to %d", kind, p.HTTPGet.Port.String(), opsPort)
		}
	}
	checkProbe("livenessProbe", c.LivenessProbe, "/healthz")
	checkProbe("readinessProbe", c.ReadinessProbe, "/readyz")
	if c.StartupProbe != nil {
		checkProbe("startupProbe", c.StartupProbe, "/healthz")
	}

	// Resources.
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, hasReq := c.Resources.Requests[name]
		lim, hasLim := c.Resources.Limits[name]
		if !hasReq || req.IsZero() {
			fail("resources.requests.%s not set", name)
		}
		if !hasLim || lim.IsZero() {
			fail("resources.limits.%s not set", name)
		}
		if hasReq && hasLim && req.Cmp(lim) > 0 {
			fail("resources.requests.%s %s > limit %s", name, req.String(), lim.String())
		}
	}

	// Security context.
	sc := c.SecurityContext
	psc := spec.SecurityContext
	nonRoot := (sc != nil && sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) ||
		(psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
	if !nonRoot {
		fail("runAsNonRoot not set")
	}
	if sc == nil {
		fail("container securityContext missing")
		return errs
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		fail("readOnlyRootFilesystem not true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		fail("allowPrivilegeEscalation not false")
	}
	if sc.Privileged != nil && *sc.Privileged {
		fail("privileged")
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		fail("capabilities.drop does not contain ALL")
	} else if len(sc.Capabilities.Add) > 0 {
		fail("capabilities.add %v", sc.Capabilities.Add)
	}
	return errs
}

// checkNetworkPolicies requires that the public port is open to all and that
// every rule admitting the ops port names restricted sources.
func checkNetworkPolicies(nps []*networkingv1.NetworkPolicy, podLabels labels.Set, c *corev1.Container) []error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	var selecting []*networkingv1.NetworkPolicy
	for _, np := range nps {
		// An empty podSelector selects every pod in the namespace.
		if isEmptySelector(&np.Spec.PodSelector) || selectorMatches(&np.Spec.PodSelector, podLabels) {
			selecting = append(selecting, np)
		}
	}
	if len(selecting) == 0 {
		fail("no NetworkPolicy selects the codewatch pods; port %d would be open to the cluster", opsPort)
		return errs
	}

	publicOpen, opsCovered := false, false
	for _, np := range selecting {
		if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
			fail("NetworkPolicy %q: policyTypes lacks Ingress", np.Name)
		}
		for i, rule := range np.Spec.Ingress {
			if ruleCovers(rule, c, publicPort) && len(rule.From) == 0 {
				publicOpen = true
			}
			if !ruleCovers(rule, c, opsPort) {
				continue
			}
			opsCovered = true
			if len(rule.From) == 0 {
				fail("NetworkPolicy %q ingress[%d] admits port %d from anywhere", np.Name, i, opsPort)
			}
			for j, peer := range rule.From {
				if peer.IPBlock != nil {
					fail("NetworkPolicy %q ingress[%d].from[%d]: ipBlock admits port %d; use selectors", np.Name, i, j, opsPort)
				}
				// A present-but-empty selector means "all namespaces" or
				// "all pods"; at least one selector in each peer must be
				// non-empty, and a namespaceSelector must not be empty.
				if peer.NamespaceSelector != nil && isEmptySelector(peer.NamespaceSelector) {
					fail("NetworkPolicy %q ingress[%d].from[%d]: empty namespaceSelector admits port %d from every namespace", np.Name, i, j, opsPort)
				}
				if isEmptySelector(peer.NamespaceSelector) && isEmptySelector(peer.PodSelector) && peer.IPBlock == nil {
					fail("NetworkPolicy %q ingress[%d].from[%d]: unrestricted peer admits port %d", np.Name, i, j, opsPort)
				}
			}
		}
	}
	if !publicOpen {
		fail("no NetworkPolicy rule admits port %d from anywhere (webhooks would be blocked)", publicPort)
	}
	if !opsCovered {
		fail("no NetworkPolicy rule admits port %d (Prometheus could not scrape)", opsPort)
	}
	return errs
}

// ruleCovers reports whether an ingress rule admits traffic to port.
func ruleCovers(rule networkingv1.NetworkPolicyIngressRule, c *corev1.Container, port int32) bool {
	if len(rule.Ports) == 0 {
		return true // no ports: all ports
	}
	for _, p := range rule.Ports {
		if p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP {
			continue
		}
		if p.Port == nil {
			return true
		}
		got, ok := resolvePort(c, *p.Port)
		if !ok {
			continue
		}
		if got == port || (p.EndPort != nil && got <= port && port <= *p.EndPort) {
			return true
		}
	}
	return false
}

// resolvePort maps a numeric or named port to a declared container port.
func resolvePort(c *corev1.Container, p intstr.IntOrString) (int32, bool) {
	for _, cp := range c.Ports {
		if (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) ||
			(p.Type == intstr.String && cp.Name != "" && cp.Name == p.StrVal) {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

func selectorMatches(sel *metav1.LabelSelector, set labels.Set) bool {
	if isEmptySelector(sel) {
		return false // would select everything: never what we want here
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && s.Matches(set)
}

func isEmptySelector(sel *metav1.LabelSelector) bool {
	return sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0)
}

func ptrStr[T any](p *T) string {
	if p == nil {
		return "<unset>"
	}
	return fmt.Sprint(*p)
}
