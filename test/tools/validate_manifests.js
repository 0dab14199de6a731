// Checks Kubernetes List documents as the API server would: each object
// against kubernetes-models' OpenAPI schema, then the rules the schema does
// not carry (DNS names, label syntax, selectors that match their pods,
// extended resources whole and equal in requests and limits). Exits 1 on
// the first document with problems, listing them all.
"use strict";
const fs = require("fs");
const { Deployment } = require("kubernetes-models/apps/v1/Deployment");
const { Service } = require("kubernetes-models/v1/Service");

const dns1123Subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const dns1035Label = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const labelValue = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const labelName = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const standard = new Set(["cpu", "memory", "ephemeral-storage"]);

function checkLabels(where, labels, problems) {
  for (const [k, v] of Object.entries(labels || {})) {
    if (!labelName.test(k) || k.split("/").pop().length > 63) problems.push(`${where}: label key '${k}'`);
    if (typeof v !== "string" || v.length > 63 || !labelValue.test(v)) problems.push(`${where}: label ${k}='${v}'`);
  }
}

let objects = 0, failed = false;
for (const file of process.argv.slice(2)) {
  const list = JSON.parse(fs.readFileSync(file, "utf8"));
  const problems = [];
  if (list.kind !== "List" || !Array.isArray(list.items) || list.items.length === 0)
    problems.push("not a List with items");
  const podLabels = [];
  for (const o of list.items || []) {
    const where = `${o.kind} ${o.metadata && o.metadata.name}`;
    try {
      (o.kind === "Deployment" ? new Deployment(o) : new Service(o)).validate();
    } catch (e) {
      problems.push(`${where}: ${e.message}`);
    }
    const name = o.metadata.name;
    if (name.length > 63 || !(o.kind === "Service" ? dns1035Label : dns1123Subdomain).test(name))
      problems.push(`${where}: name is not a valid ${o.kind} name`);
    checkLabels(`${where} metadata`, o.metadata.labels, problems);
    if (o.kind === "Deployment") {
      const tpl = o.spec.template;
      checkLabels(`${where} pod`, tpl.metadata.labels, problems);
      for (const [k, v] of Object.entries(o.spec.selector.matchLabels))
        if (tpl.metadata.labels[k] !== v) problems.push(`${where}: selector ${k}=${v} does not select its pods`);
      checkLabels(`${where} nodeSelector`, tpl.spec.nodeSelector, problems);
      podLabels.push(tpl.metadata.labels);
      for (const c of tpl.spec.containers) {
        const req = c.resources.requests || {}, lim = c.resources.limits || {};
        for (const r of new Set([...Object.keys(req), ...Object.keys(lim)])) {
          if (standard.has(r)) continue;
          if (req[r] !== lim[r]) problems.push(`${where}: extended resource ${r} must have equal request and limit`);
          if (!/^[1-9][0-9]*$/.test(String(lim[r]))) problems.push(`${where}: extended resource ${r}='${lim[r]}' is not whole`);
        }
      }
    } else {
      const sel = o.spec.selector;
      if (!podLabels.concat(list.items.filter((x) => x.kind === "Deployment").map((x) => x.spec.template.metadata.labels))
          .some((l) => Object.entries(sel).every(([k, v]) => l[k] === v)))
        problems.push(`${where}: selects no pods of this List`);
    }
    objects++;
  }
  if (problems.length) {
    failed = true;
    console.error(`FAIL ${file}:\n  ` + problems.join("\n  "));
  } else {
    const kinds = (list.items || []).map((o) => o.kind[0]).join("");
    console.log(`ok ${file.split("/").pop()}: ${list.items.length} objects (${kinds})`);
  }
}
if (failed) process.exit(1);
console.log(`OK: ${objects} objects valid`);
