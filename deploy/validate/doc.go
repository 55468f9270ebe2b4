// Package validate holds tests for the deployment artefacts under deploy/.
//
// It is a separate Go module so that the Kubernetes and kustomize libraries
// never enter the codewatch binary's dependency graph. Run it with:
//
//	cd deploy/validate && go test ./...
//
// The tests render deploy/k8s with the kustomize API, decode every rendered
// object strictly (case-sensitive, unknown and duplicate fields rejected, as
// the API server does) into its k8s.io/api type, and check the invariants the
// operations guide relies on.
package validate
