// Builds max-replicas.js into a Wasm component for the
// `skiff:plugins/admission-validate` world with componentize-js, called as
// a library (its CLI is not needed).
//
//   node build.mjs [OUT.wasm]
//
// componentize-js is loaded from $SKIFF_NODE_TOOLS (default
// ~/.cache/skiff/tools/node), where it is installed with
//   npm install --prefix ~/.cache/skiff/tools/node --save-exact \
//     @bytecodealliance/componentize-js@0.23.0 @bytecodealliance/preview2-shim@0.17.9
// (componentize-js needs preview2-shim at run time without depending on
// it; with 0.26 it cannot read the WIT folder.)

import { writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const tools = process.env.SKIFF_NODE_TOOLS ?? join(homedir(), ".cache/skiff/tools/node");
const entry = join(tools, "node_modules/@bytecodealliance/componentize-js/src/componentize.js");
const out = resolve(process.argv[2] ?? join(here, "max-replicas.wasm"));

let componentize;
try {
  ({ componentize } = await import(pathToFileURL(entry).href));
} catch (e) {
  console.error(`cannot load componentize-js from ${entry}: ${e.message}`);
  console.error(
    `install it: npm install --prefix ${tools} --save-exact ` +
      "@bytecodealliance/componentize-js@0.23.0 @bytecodealliance/preview2-shim@0.17.9",
  );
  process.exit(1);
}

const { component } = await componentize({
  sourcePath: join(here, "max-replicas.js"),
  witPath: join(here, "../../wit"),
  worldName: "admission-validate",
  // A plugin gets no network, clock or randomness worth having; stdio
  // stays so that console.error reaches the host's log.
  disableFeatures: ["random", "clocks", "http", "fetch-event"],
});
await writeFile(out, component);
console.log(`${out}: ${component.length} bytes`);
