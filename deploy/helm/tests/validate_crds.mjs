// Validates custom resources against the models published on npm by
// kubernetes-models-ts (JSON schemas generated from each project's CRDs).
// Reads a JSON array of objects on stdin; prints a JSON array with, for each,
// null (valid), an error message, or "unknown" when no model covers its kind.
// Usage: node validate_crds.mjs <dir holding node_modules/@kubernetes-models>
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const root = join(process.argv[2], "node_modules", "@kubernetes-models");
const models = {
  "kafka.strimzi.io/v1 KafkaTopic": ["strimzi-kafka-operator/kafka.strimzi.io/v1/KafkaTopic.js", "KafkaTopic"],
  "keda.sh/v1alpha1 ScaledObject": ["keda/keda.sh/v1alpha1/ScaledObject.js", "ScaledObject"],
  "keda.sh/v1alpha1 TriggerAuthentication": ["keda/keda.sh/v1alpha1/TriggerAuthentication.js", "TriggerAuthentication"],
  "monitoring.coreos.com/v1 ServiceMonitor": ["prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor.js", "ServiceMonitor"],
};

const objects = JSON.parse(readFileSync(0, "utf8"));
const results = [];
for (const object of objects) {
  const model = models[`${object.apiVersion} ${object.kind}`];
  if (!model) {
    results.push("unknown");
    continue;
  }
  const module = await import(pathToFileURL(join(root, model[0])).href);
  try {
    new module[model[1]](object).validate();
    results.push(null);
  } catch (error) {
    results.push(String(error && error.message ? error.message : error));
  }
}
process.stdout.write(JSON.stringify(results));
