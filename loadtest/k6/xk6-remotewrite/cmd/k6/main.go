// Command k6 is k6 itself with this project's k6/x/remotewrite extension
// compiled in: what `xk6 build --with <extension>` would generate.
package main

import (
	"go.k6.io/k6/cmd"

	_ "metrics-pipeline/loadtest/k6/xk6-remotewrite/remotewrite"
)

func main() {
	cmd.Execute()
}
