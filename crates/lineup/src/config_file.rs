//! Reading TOML files (routing config and node config) with errors that name the file, the
//! line and the field. Parsing happens in two passes: serde gives typed values (and syntax or
//! type errors with a byte span), and a spanned parse of the same text locates the field that
//! a later semantic check (the core's validation) complains about.

use lineup_core::ingress::IngressPolicy;
use lineup_core::{
    AlarmPolicy, CallbackPolicy, ConfigProblem, CoreError, GateConfig, OperatorConfig, QueueConfig, RoutingConfigSet,
    ScheduleConfig, WebhookConfig,
};
use serde::de::DeserializeOwned;
use std::fmt;
use std::path::{Path, PathBuf};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// Largest config file read (a routing config of thousands of operators is far below).
pub const CONFIG_FILE_MAX_BYTES: u64 = 16 * 1024 * 1024;

/// A config problem located in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFileError {
    pub path: PathBuf,
    /// 1-based line and column, when the problem could be located.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Dotted path of the field, e.g. `queues[id=sales].max_wait_ms`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if self.field.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": field `{}`: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for ConfigFileError {}

/// A TOML text and where it came from.
pub struct ConfigText {
    pub path: PathBuf,
    pub text: String,
}

impl ConfigText {
    pub fn read(path: &Path) -> Result<Self, ConfigFileError> {
        let fail = |message: String| ConfigFileError {
            path: path.to_path_buf(),
            line: None,
            column: None,
            field: String::new(),
            message,
        };
        let size = std::fs::metadata(path).map_err(|e| fail(format!("cannot read: {e}")))?.len();
        if size > CONFIG_FILE_MAX_BYTES {
            return Err(fail(format!("larger than {CONFIG_FILE_MAX_BYTES} bytes")));
        }
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        Ok(Self { path: path.to_path_buf(), text })
    }

    #[cfg(test)]
    pub fn from_string(path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        Self { path: path.into(), text: text.into() }
    }

    fn error_at(&self, span: Option<std::ops::Range<usize>>, field: String, message: String) -> ConfigFileError {
        let (line, column) = match span {
            Some(span) => {
                let (l, c) = line_column(&self.text, span.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        ConfigFileError { path: self.path.clone(), line, column, field, message }
    }

    /// An error about a field found valid by serde but refused by a later check: points at
    /// the key (or its `_env` twin, or the nearest enclosing section that is present).
    pub fn field_error(&self, field: &str, message: &str) -> ConfigFileError {
        let mut keys = Vec::new();
        if let Ok(doc) = DeTable::parse(&self.text) {
            collect_keys(doc.get_ref(), "", &mut keys);
        }
        let find = |path: &str| keys.iter().find(|(_, p)| p == path).map(|(start, _)| *start);
        let mut candidates = vec![field.to_string(), format!("{field}_env")];
        let mut prefix = field;
        while let Some((head, _)) = prefix.rsplit_once('.') {
            candidates.push(head.to_string());
            prefix = head;
        }
        let start = candidates.iter().find_map(|c| find(c));
        self.error_at(start.map(|s| s..s), field.to_string(), message.to_string())
    }

    /// Deserializes the whole file; a syntax or type error names its line and field.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigFileError> {
        toml::from_str::<T>(&self.text).map_err(|e| {
            let span = e.span();
            let field = span.clone().and_then(|s| self.field_at(s.start)).unwrap_or_default();
            self.error_at(span, field, e.message().trim().to_string())
        })
    }

    /// The dotted path of the key at or last before byte `offset` (container spans of
    /// `[[array]]` tables do not cover their keys, so keys are matched by position).
    fn field_at(&self, offset: usize) -> Option<String> {
        let doc = DeTable::parse(&self.text).ok()?;
        let mut keys = Vec::new();
        collect_keys(doc.get_ref(), "", &mut keys);
        keys.into_iter().filter(|(start, _)| *start <= offset).max_by_key(|(start, _)| *start).map(|(_, path)| path)
    }

    /// Where a semantic problem in a routing config points: the field's key, else the
    /// object's `id`, else the section.
    fn locate_problem(&self, problem: &ConfigProblem) -> (Option<std::ops::Range<usize>>, String) {
        let section = problem.kind.section();
        let label = format!("{section}[id={}].{}", problem.id, problem.field);
        let Ok(doc) = DeTable::parse(&self.text) else {
            return (None, label);
        };
        let Some((_, items)) = doc.get_ref().iter().find(|(k, _)| k.get_ref().as_ref() == section) else {
            return (None, label);
        };
        let DeValue::Array(items) = items.get_ref() else {
            return (Some(items.span()), label);
        };
        for item in items {
            let DeValue::Table(table) = item.get_ref() else { continue };
            let id_matches = table.iter().any(|(k, v)| {
                k.get_ref().as_ref() == "id" && matches!(v.get_ref(), DeValue::String(s) if s.as_ref() == problem.id)
            });
            if !id_matches {
                continue;
            }
            let field_key = problem.field.split(['.', '[']).next().unwrap_or("");
            if let Some((key, _)) = table.iter().find(|(k, _)| k.get_ref().as_ref() == field_key) {
                return (Some(key.span()), label);
            }
            if let Some((key, _)) = table.iter().find(|(k, _)| k.get_ref().as_ref() == "id") {
                return (Some(key.span()), label);
            }
            return (Some(item.span()), label);
        }
        (None, label)
    }
}

/// Every key in the document with its start offset and dotted path.
fn collect_keys(table: &DeTable<'_>, prefix: &str, out: &mut Vec<(usize, String)>) {
    for (key, value) in table {
        let path = if prefix.is_empty() { key.get_ref().to_string() } else { format!("{prefix}.{}", key.get_ref()) };
        out.push((key.span().start, path.clone()));
        collect_value_keys(value, &path, out);
    }
}

fn collect_value_keys(value: &Spanned<DeValue<'_>>, path: &str, out: &mut Vec<(usize, String)>) {
    match value.get_ref() {
        DeValue::Table(t) => collect_keys(t, path, out),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                // Name array elements by their id where they have one (queues[id=sales]).
                let id = match item.get_ref() {
                    DeValue::Table(t) => t.iter().find_map(|(k, v)| match v.get_ref() {
                        DeValue::String(s) if k.get_ref().as_ref() == "id" => Some(s.to_string()),
                        _ => None,
                    }),
                    _ => None,
                };
                let element = match id {
                    Some(id) => format!("{path}[id={id}]"),
                    None => format!("{path}[{i}]"),
                };
                collect_value_keys(item, &element, out);
            }
        }
        _ => {}
    }
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, column)
}

/// A routing config file: the config set, and the policies the file has.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingFile {
    pub schedules: Vec<ScheduleConfig>,
    pub queues: Vec<QueueConfig>,
    pub gates: Vec<GateConfig>,
    pub operators: Vec<OperatorConfig>,
    /// `[callback_policy]`; absent leaves the cluster's policy as it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_policy: Option<CallbackPolicy>,
    /// `[alarm_policy]`; absent leaves the cluster's policy as it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarm_policy: Option<AlarmPolicy>,
    /// `[[webhooks]]`; absent leaves the cluster's list as it is, present replaces it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhooks: Option<Vec<WebhookConfig>>,
    /// `[[ingress.dids]]`: the DID map; absent leaves the cluster's as it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressPolicy>,
}

/// The routing file's sections that stand apart from the set (nothing in the set refers to
/// them): each is its own command. None leaves the cluster's as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoutingPolicies {
    pub callback: Option<CallbackPolicy>,
    pub alarm: Option<AlarmPolicy>,
    pub webhooks: Option<Vec<WebhookConfig>>,
    pub ingress: Option<IngressPolicy>,
}

/// Reads and validates a routing config file (queues, gates, operators, schedules, and the
/// policies it has).
pub fn load_routing(text: &ConfigText) -> Result<(RoutingConfigSet, RoutingPolicies), ConfigFileError> {
    let file: RoutingFile = text.parse()?;
    let set = RoutingConfigSet {
        schedules: file.schedules,
        queues: file.queues,
        gates: file.gates,
        operators: file.operators,
    };
    let set = set.normalized();
    set.validate().map_err(|problem| routing_problem(text, &problem))?;
    let field_error = |section: &str, e: CoreError| match e {
        CoreError::InvalidField { field, reason } => text.field_error(&field, &reason),
        other => text.field_error(section, &other.to_string()),
    };
    if let Some(policy) = &file.callback_policy {
        policy.validate().map_err(|e| field_error("callback_policy", e))?;
    }
    if let Some(policy) = &file.alarm_policy {
        policy.validate().map_err(|e| field_error("alarm_policy", e))?;
    }
    if let Some(list) = &file.webhooks {
        lineup_core::webhook::validate_webhooks(list).map_err(|e| field_error("webhooks", e))?;
    }
    if let Some(policy) = &file.ingress {
        policy.validate().map_err(|e| field_error("ingress", e))?;
        // The set replaces the gates, so the map may name only the file's.
        if let Some(route) = policy.dids.iter().find(|r| !set.gates.iter().any(|g| g.id == r.gate)) {
            let reason = format!("DID {} names gate {}, which the file does not have", route.did, route.gate);
            return Err(text.field_error("ingress.dids.gate", &reason));
        }
    }
    let policies = RoutingPolicies {
        callback: file.callback_policy,
        alarm: file.alarm_policy,
        webhooks: file.webhooks,
        ingress: file.ingress,
    };
    Ok((set, policies))
}

/// Locates a problem the core (or a node) reported about a set read from `text`.
pub fn routing_problem(text: &ConfigText, problem: &ConfigProblem) -> ConfigFileError {
    let (span, field) = text.locate_problem(problem);
    text.error_at(span, field, problem.reason.clone())
}

/// The routing config as a TOML document (`lineup config export`).
pub fn routing_to_toml(set: &RoutingConfigSet, policies: &RoutingPolicies) -> Result<String, toml::ser::Error> {
    let file = RoutingFile {
        schedules: set.schedules.clone(),
        queues: set.queues.clone(),
        gates: set.gates.clone(),
        operators: set.operators.clone(),
        callback_policy: policies.callback.clone(),
        alarm_policy: policies.alarm.clone(),
        webhooks: policies.webhooks.clone(),
        ingress: policies.ingress.clone(),
    };
    let body = toml::to_string_pretty(&file)?;
    Ok(format!(
        "# Lineup routing config: apply with `lineup config apply FILE`.\n# Times are in milliseconds, \
         skill levels 0-100, priorities 0 (first) to 255.\n\n{body}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[queues]]
id = "sales"
name = "Sales"
max_wait_ms = 240000
timeout_target = { queue = { queue = "support", keep_order = true } }

[[queues]]
id = "support"
name = "Support"
required_skills = { english = 50 }

[[gates]]
id = "web"
queue = "sales"

[[operators]]
id = "1101"
name = "Alice"
site = 1
mode = "ring"
endpoint = "PJSIP/alice"
memberships = { sales = 0, support = 1 }
skills = { english = 80 }
"#;

    fn load(text: &str) -> Result<RoutingConfigSet, ConfigFileError> {
        load_with_policy(text).map(|(set, _)| set)
    }

    fn load_with_policy(text: &str) -> Result<(RoutingConfigSet, Option<CallbackPolicy>), ConfigFileError> {
        load_with_policies(text).map(|(set, policies)| (set, policies.callback))
    }

    fn load_with_policies(text: &str) -> Result<(RoutingConfigSet, RoutingPolicies), ConfigFileError> {
        load_routing(&ConfigText::from_string("routing.toml", text))
    }

    const EXAMPLE_ROUTING: &str = include_str!("../../../deploy/examples/routing.toml");
    const EXAMPLE_DIALPLAN: &str = include_str!("../../../deploy/asterisk/extensions.conf");
    const EXAMPLE_SITES: [&str; 3] = [
        include_str!("../../../deploy/examples/site-1.toml"),
        include_str!("../../../deploy/examples/site-2.toml"),
        include_str!("../../../deploy/examples/site-3.toml"),
    ];

    /// The shipped example is a complete deployment: its routing config loads, every caller
    /// entry of the shipped dialplan names a queue and one of that queue's gates, and every
    /// gate is entered from the dialplan.
    #[test]
    fn the_example_routing_config_matches_the_shipped_dialplan() {
        use lineup_ari::stasis_args::{parse_stasis_entry, split_stasis_app_data, StasisEntry};
        let set = load(EXAMPLE_ROUTING).unwrap_or_else(|e| panic!("{e}"));
        let dialplan = lineup_pbx_sim::Dialplan::parse(EXAMPLE_DIALPLAN).unwrap();
        let mut entered = std::collections::BTreeSet::new();
        for (context, pattern, _, step) in dialplan.steps() {
            let (application, args) = split_stasis_app_data(&step.data);
            if step.application != "Stasis" || application != "lineup" {
                continue;
            }
            let Ok(StasisEntry::Caller { queue, gate, .. }) = parse_stasis_entry(&application, &args) else { continue };
            assert!(set.queues.iter().any(|q| q.id.as_str() == queue), "{context},{pattern}: no queue {queue}");
            let gate = gate.unwrap_or_else(|| panic!("{context},{pattern}: every example entry names its gate"));
            let owner = set.gates.iter().find(|g| g.id.as_str() == gate).map(|g| g.queue.as_str());
            assert_eq!(owner, Some(queue.as_str()), "{context},{pattern}: gate {gate} is not a gate of {queue}");
            entered.insert(gate);
        }
        let gates: std::collections::BTreeSet<String> = set.gates.iter().map(|g| g.id.to_string()).collect();
        assert_eq!(entered, gates, "every example gate has its entry in extensions.conf");
    }

    /// The example's operators sit at the example's sites, and each site's trunks are named
    /// `site-N` as in deploy/asterisk's trunk snippets.
    #[test]
    fn the_example_sites_and_trunks_line_up() {
        let set = load(EXAMPLE_ROUTING).unwrap();
        let mut sites = std::collections::BTreeSet::new();
        for text in EXAMPLE_SITES {
            let node: toml::Value = toml::from_str(text).unwrap();
            let site = node["site"].as_integer().unwrap() as u64;
            sites.insert(site);
            let trunks = node["calls"]["trunk_endpoints"].as_table().unwrap();
            assert_eq!(trunks.len(), 2, "site {site}: a trunk to each other site");
            for (other, endpoint) in trunks {
                let endpoint = endpoint.as_str().unwrap();
                assert!(endpoint.ends_with(&format!("@site-{other}")), "site {site}: {endpoint}");
            }
        }
        for operator in &set.operators {
            assert!(sites.contains(&operator.site.0), "operator {} at site {}", operator.id, operator.site.0);
            assert!(operator.pin_hash.starts_with("$argon2id$"), "operator {} has a real hash", operator.id);
        }
    }

    #[test]
    fn a_good_file_loads_and_exports_to_an_equal_set() {
        let set = load(GOOD).unwrap();
        assert_eq!(set.queues.len(), 2);
        let exported = routing_to_toml(&set, &RoutingPolicies::default()).unwrap();
        assert_eq!(load(&exported).unwrap(), set);
    }

    #[test]
    fn a_semantic_error_names_file_line_and_field() {
        let bad = GOOD.replace(r#"queue = "sales""#, r#"queue = "nowhere""#);
        let e = load(&bad).unwrap_err();
        assert_eq!(e.field, "gates[id=web].queue");
        let line = bad.lines().position(|l| l.contains("\"nowhere\"")).unwrap() + 1;
        assert_eq!(e.line, Some(line), "{e}");
        assert!(e.to_string().starts_with(&format!("routing.toml:{line}:")), "{e}");
        assert!(e.message.contains("nowhere"), "{e}");
    }

    #[test]
    fn a_misspelt_setting_names_its_line() {
        let bad = GOOD.replace("max_wait_ms", "max_wiat_ms");
        let e = load(&bad).unwrap_err();
        let line = bad.lines().position(|l| l.contains("max_wiat_ms")).unwrap() + 1;
        assert_eq!(e.line, Some(line), "{e}");
        assert!(e.message.contains("max_wiat_ms"), "{e}");
        assert!(e.field.starts_with("queues[id=sales]"), "{e}");
    }

    #[test]
    fn a_wrong_type_names_the_field() {
        let bad = GOOD.replace("max_wait_ms = 240000", "max_wait_ms = \"four minutes\"");
        let e = load(&bad).unwrap_err();
        assert_eq!(e.field, "queues[id=sales].max_wait_ms", "{e}");
        assert!(e.line.is_some());
    }

    #[test]
    fn a_ring_operator_without_endpoint_points_at_the_operator() {
        let bad = GOOD.replace("endpoint = \"PJSIP/alice\"\n", "");
        let e = load(&bad).unwrap_err();
        assert_eq!(e.field, "operators[id=1101].endpoint", "{e}");
        let line = bad.lines().position(|l| l.contains("id = \"1101\"")).unwrap() + 1;
        assert_eq!(e.line, Some(line), "{e}");
    }

    #[test]
    fn a_callback_policy_loads_exports_and_a_bad_pattern_names_its_line() {
        let with_policy = format!("{GOOD}\n[callback_policy]\nallowed_patterns = [\"_33ZXXXXXXXX\"]\n");
        let (set, policy) = load_with_policy(&with_policy).unwrap();
        let policy = policy.expect("the file has a policy");
        assert_eq!(policy.allowed_patterns, vec!["_33ZXXXXXXXX".to_string()]);
        assert_eq!(policy.denied_numbers, CallbackPolicy::default().denied_numbers, "absent lists keep the defaults");
        let policies = RoutingPolicies { callback: Some(policy.clone()), ..Default::default() };
        let exported = routing_to_toml(&set, &policies).unwrap();
        assert_eq!(load_with_policy(&exported).unwrap(), (set, Some(policy)));
        assert_eq!(load_with_policy(GOOD).unwrap().1, None, "no section: the cluster's policy stays");
        let bad = with_policy.replace("_33ZXXXXXXXX", "33[");
        let e = load_with_policy(&bad).unwrap_err();
        assert_eq!(e.field, "callback_policy.allowed_patterns", "{e}");
        assert_eq!(e.line, Some(bad.lines().position(|l| l.contains("33[")).unwrap() + 1), "{e}");
    }

    #[test]
    fn an_alarm_policy_loads_exports_and_a_bad_value_names_its_line() {
        let with_policy = format!(
            "{GOOD}\n[alarm_policy]\nhold_ms = 60000\ndepth_clear_percent = 50\n\n[alarm_policy.queues.sales]\ndepth_clear = 3\n"
        );
        let (set, policies) = load_with_policies(&with_policy).unwrap();
        let policy = policies.alarm.clone().expect("the file has an alarm policy");
        assert_eq!((policy.hold_ms, policy.depth_clear_percent), (60_000, 50));
        assert_eq!(policy.longest_wait_clear_percent, AlarmPolicy::default().longest_wait_clear_percent);
        assert_eq!(policy.queues[&lineup_core::QueueId::new("sales")].depth_clear, Some(3));
        let exported = routing_to_toml(&set, &policies).unwrap();
        assert_eq!(load_with_policies(&exported).unwrap(), (set, policies));
        assert_eq!(load_with_policies(GOOD).unwrap().1.alarm, None, "no section: the cluster's policy stays");
        let bad = with_policy.replace("hold_ms = 60000", "hold_ms = 99999999");
        let e = load_with_policies(&bad).unwrap_err();
        assert_eq!(e.field, "alarm_policy.hold_ms", "{e}");
        assert_eq!(e.line, Some(bad.lines().position(|l| l.contains("99999999")).unwrap() + 1), "{e}");
        let e = load_with_policies(&with_policy.replace("depth_clear = 3", "depth_clera = 3")).unwrap_err();
        assert!(e.message.contains("depth_clera"), "{e}");
    }

    #[test]
    fn webhooks_load_export_and_a_bad_secret_names_its_line() {
        let with_hooks = format!(
            "{GOOD}\n[[webhooks]]\nid = \"ops\"\nurl = \"https://ops.example/lineup\"\nsecret = \"0123456789abcdef\"\nevents = [\"alarm_raised\", \"site_lost\"]\n"
        );
        let (set, policies) = load_with_policies(&with_hooks).unwrap();
        let hooks = policies.webhooks.clone().expect("the file has webhooks");
        assert_eq!((hooks[0].id.as_str(), hooks[0].enabled), ("ops", true), "enabled by default");
        // An export shows the secret redacted, and loads again (the node keeps the secret).
        let exported =
            RoutingPolicies { webhooks: Some(hooks.iter().map(WebhookConfig::redacted).collect()), ..policies };
        let text = routing_to_toml(&set, &exported).unwrap();
        assert!(!text.contains("0123456789abcdef") && text.contains(lineup_core::WEBHOOK_SECRET_REDACTED), "{text}");
        assert_eq!(load_with_policies(&text).unwrap(), (set, exported));
        assert_eq!(load_with_policies(GOOD).unwrap().1.webhooks, None, "no section: the cluster's list stays");
        let bad = with_hooks.replace("0123456789abcdef", "short");
        let e = load_with_policies(&bad).unwrap_err();
        assert_eq!(e.field, "webhooks[id=ops].secret", "{e}");
        assert_eq!(e.line, Some(bad.lines().position(|l| l.contains("short")).unwrap() + 1), "{e}");
        // The example's commented webhook loads once uncommented.
        let example: String = EXAMPLE_ROUTING
            .lines()
            .skip_while(|l| *l != "# [[webhooks]]")
            .take_while(|l| l.starts_with('#'))
            .map(|l| format!("{}\n", l.trim_start_matches("# ")))
            .collect();
        let (_, policies) = load_with_policies(&format!("{GOOD}\n{example}")).unwrap();
        assert_eq!(policies.webhooks.map(|w| w.len()), Some(1));
    }

    #[test]
    fn a_syntax_error_names_its_line() {
        let e = load("[[queues]]\nid = \"sales\nname = 1\n").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
    }
}
