// Parses runeworker's messages with RTES's own serde types (copied verbatim from
// services/rtes/src/domain/models.rs at b172fe65) and applies the limits its store adds.
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::BufRead;

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq, Default)]
pub struct StackFrame {
    pub split_node_id: String,
    pub branch_id:     String,
    pub item_index:    i32,
    pub total_items:   i32,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq)]
pub struct NodeError {
    pub message: String,
    pub code:    String,
    pub details: Option<Value>,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq)]
pub struct NodeStatusMessage {
    pub workflow_id:      String,
    pub execution_id:     String,
    pub node_id:          String,
    pub node_name:        String,
    pub status:           String,
    pub input:            Option<Value>,
    pub parameters:       Option<Value>,
    pub output:           Option<Value>,
    pub error:            Option<NodeError>,
    pub executed_at:      String,
    pub duration_ms:      i64,
    pub branch_id:        Option<String>,
    pub split_node_id:    Option<String>,
    pub item_index:       Option<i32>,
    pub total_items:      Option<i32>,
    pub processed_count:  Option<i32>,
    pub aggregator_state: Option<String>,
    pub lineage_stack:    Option<Vec<StackFrame>>,
    pub lineage_hash:     Option<String>,
    pub used_inputs:      Option<Value>,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq)]
pub struct CompletionMessage {
    pub workflow_id:       String,
    pub execution_id:      String,
    pub status:            String,
    pub final_context:     Value,
    pub completed_at:      String,
    pub total_duration_ms: i64,
    pub failure_reason:    Option<String>,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq)]
pub struct NodeExecutionMessage {
    pub workflow_id:         String,
    pub workflow_version:    i32,
    pub workflow_version_id: i64,
    pub execution_id:        String,
    pub current_node:        String,
    pub workflow_definition: Value,
    pub accumulated_context: Value,
    pub lineage_stack:       Option<Vec<StackFrame>>,
    pub from_node:           Option<String>,
    pub is_worker_initiated: Option<bool>,
}

// bson::to_bson of a serde_json::Value fails on an unsigned integer above i64::MAX
// (the store's `bson::to_bson(...)?` then errors and the delivery is nacked).
fn bson_ok(v: &Value) -> Result<(), String> {
    match v {
        Value::Number(n) => {
            if n.is_u64() && n.as_i64().is_none() {
                return Err(format!("bson: unsigned integer {n} exceeds i64"));
            }
            Ok(())
        }
        Value::Array(a) => a.iter().try_for_each(bson_ok),
        Value::Object(o) => o.values().try_for_each(bson_ok),
        _ => Ok(()),
    }
}

fn check(kind: &str, body: &str) -> Result<(), String> {
    match kind {
        "status" => {
            let m: NodeStatusMessage = serde_json::from_str(body).map_err(|e| e.to_string())?;
            let v = serde_json::to_value(&m).map_err(|e| e.to_string())?;
            bson_ok(&v)
        }
        "completion" => {
            let _m: CompletionMessage = serde_json::from_str(body).map_err(|e| e.to_string())?;
            Ok(())
        }
        "mirror" => {
            let m: NodeExecutionMessage = serde_json::from_str(body).map_err(|e| e.to_string())?;
            bson_ok(&m.accumulated_context)
        }
        other => Err(format!("unknown kind {other}")),
    }
}

fn main() {
    // one line per message: "<kind>\t<json>"; one answer line each: "ok" or "err\t<reason>"
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line.expect("read");
        let (kind, body) = line.split_once('\t').unwrap_or((&line, ""));
        match check(kind, body) {
            Ok(()) => println!("ok"),
            Err(e) => println!("err\t{}", e.replace('\n', " ")),
        }
    }
}
