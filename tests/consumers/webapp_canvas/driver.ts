// Runs the web app's own canvas conversion (apps/web/src/lib/workflow-dsl.ts of rune-org/rune,
// reached through the "@/..." path alias; nothing of it is copied here).
//
//   node driver.cjs CASES.json        one line of JSON: for each canvas graph {nodes, edges}
//                                     in CASES.json, {ok: <definition>} or {error: "<message>"}
//   node driver.cjs --integration-kinds   the integration node kinds the web app knows
//
// The definition is canvasToWorkflowData(nodes, edges, {ignoreMissingCredentials: true}) as
// JSON.stringify writes it, so that a node needing a credential it lacks converts, as
// runeworker.canvas assumes (the web app's own save path, graphToWorkflowData in
// apps/web/src/lib/workflows.ts, passes no options and throws MissingNodeCredentialsError).
import { readFileSync } from "node:fs";
import { getIntegrationNodeKinds } from "@/features/canvas/integrations/helpers";
import { canvasToWorkflowData } from "@/lib/workflow-dsl";

if (process.argv[2] === "--integration-kinds") {
  process.stdout.write(JSON.stringify(getIntegrationNodeKinds()));
} else {
  const cases = JSON.parse(readFileSync(process.argv[2], "utf8")) as Array<{
    nodes: unknown;
    edges: unknown;
  }>;
  const out = cases.map((g) => {
    try {
      const r = canvasToWorkflowData(g.nodes as never, g.edges as never, {
        ignoreMissingCredentials: true,
      });
      return { ok: JSON.parse(JSON.stringify(r)) };
    } catch (e) {
      return { error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
    }
  });
  process.stdout.write(JSON.stringify(out));
}
