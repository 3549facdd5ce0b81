//! [`Acl`]: who may publish to and subscribe to which topics, from an ACL file (`[auth]
//! acl_file`), and the [`Permissions`] of one client under it.
//!
//! The file is TOML: a list of rules, tried in order; the first rule that applies to the
//! client, the action and the topic decides, and when none does `acl_no_match` decides
//! (`deny` by default: with an ACL file, what is not granted is refused, as in Mosquitto).
//!
//! ```toml
//! [[rule]]
//! permission = "allow"            # or "deny"
//! user = "alice"                  # optional: only this user name
//! client_id = "dev-1"             # optional: only this client id
//! action = "publish"              # "publish", "subscribe" or "all" (the default)
//! topics = ["sensors/%u/#", "devices/%c/status"]
//! ```
//!
//! In topics, `%u` stands for the client's user name and `%c` for its client id. A rule whose
//! topic needs a user name does not apply to a client without one, and neither `%u` nor `%c`
//! is ever replaced by a value containing `/`, `+` or `#`: a client id `alice/x` must not reach
//! into the topics of client `alice` (such a rule does not apply to it).
//!
//! Decisions:
//! - **publish** to a topic name: the first rule with action `publish` or `all` whose topic
//!   filter matches the name;
//! - **subscribe** to a filter: the first such rule (action `subscribe` or `all`) whose topic
//!   filter *covers* the requested one ([`filter_covers`]: it matches every topic the requested
//!   filter matches). A shared subscription `$share/g/f` is judged by `f`;
//! - **receive** a message on a topic (every delivery is checked too, since a subscription to
//!   a wide filter can bring topics a later rule denies): the first subscribe rule whose filter
//!   matches the topic.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, RwLock};

use serde::Deserialize;

use crate::codec::TopicFilter;
use crate::router::{filter_covers, filter_matches};
use crate::session::Permissions;

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    Allow,
    Deny,
}

/// What a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Action {
    Publish,
    Subscribe,
    #[default]
    All,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    #[serde(default, rename = "rule")]
    rules: Vec<Rule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    permission: Permission,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    action: Action,
    topics: Vec<String>,
}

/// Why an ACL file was refused.
#[derive(Debug, thiserror::Error)]
pub enum AclError {
    #[error("cannot read the ACL file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("ACL file {path}: {message}")]
    Invalid { path: String, message: String },
}

/// The rules of an ACL file.
#[derive(Debug, Clone)]
pub struct Acl {
    rules: Vec<Rule>,
    no_match: Permission,
}

/// Who asks: the user name from CONNECT (if any) and the client id.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    pub username: Option<&'a str>,
    pub client_id: &'a str,
}

impl Acl {
    /// Reads and checks an ACL file.
    pub fn load(path: &Path, no_match: Permission) -> Result<Acl, AclError> {
        let text = std::fs::read_to_string(path).map_err(|source| AclError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Acl::parse(&text, no_match).map_err(|message| AclError::Invalid {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parses and checks the rules: every topic must be a valid topic filter once `%u` and
    /// `%c` are replaced, and a rule needs at least one topic.
    pub fn parse(text: &str, no_match: Permission) -> Result<Acl, String> {
        let file: FileToml = toml::from_str(text).map_err(|e| e.to_string())?;
        for (i, rule) in file.rules.iter().enumerate() {
            if rule.topics.is_empty() {
                return Err(format!("rule {}: no topics", i + 1));
            }
            for topic in &rule.topics {
                let sample = topic.replace("%u", "user").replace("%c", "client");
                let filter = TopicFilter::new(&sample)
                    .map_err(|e| format!("rule {}: topic {topic:?}: {e}", i + 1))?;
                if filter.shared().is_some() {
                    return Err(format!(
                        "rule {}: topic {topic:?}: rules name plain filters; a shared \
                         subscription is judged by its filter",
                        i + 1
                    ));
                }
            }
        }
        Ok(Acl {
            rules: file.rules,
            no_match,
        })
    }

    /// May this client publish to `topic` (a topic name)?
    pub fn may_publish(&self, who: Identity<'_>, topic: &str) -> bool {
        self.decide(who, Action::Publish, |filter| filter_matches(filter, topic))
    }

    /// May this client subscribe to `filter` (shared subscriptions by their filter)?
    pub fn may_subscribe(&self, who: Identity<'_>, filter: &str) -> bool {
        let plain = match TopicFilter::new(filter) {
            Ok(f) => f.matching_filter().to_owned(),
            Err(_) => return false,
        };
        self.decide(who, Action::Subscribe, |rule| filter_covers(rule, &plain))
    }

    /// May a message on `topic` be delivered to this client?
    pub fn may_receive(&self, who: Identity<'_>, topic: &str) -> bool {
        self.decide(who, Action::Subscribe, |filter| {
            filter_matches(filter, topic)
        })
    }

    /// The permission of the first rule for `who` and `action` one of whose topics (with
    /// `%u`/`%c` replaced) `fits`; `no_match` when none.
    fn decide(&self, who: Identity<'_>, action: Action, fits: impl Fn(&str) -> bool) -> bool {
        for rule in &self.rules {
            if !(rule.action == action || rule.action == Action::All) {
                continue;
            }
            if rule
                .user
                .as_deref()
                .is_some_and(|u| Some(u) != who.username)
                || rule
                    .client_id
                    .as_deref()
                    .is_some_and(|c| c != who.client_id)
            {
                continue;
            }
            let hit = rule
                .topics
                .iter()
                .filter_map(|topic| substitute(topic, who))
                .any(|filter| fits(&filter));
            if hit {
                return rule.permission == Permission::Allow;
            }
        }
        self.no_match == Permission::Allow
    }
}

/// `topic` with `%u` and `%c` replaced; `None` when it needs a value the client lacks or
/// whose value would change the filter's levels.
fn substitute(topic: &str, who: Identity<'_>) -> Option<String> {
    let safe = |value: &str| !value.contains(['/', '+', '#']);
    let mut filter = topic.to_owned();
    if filter.contains("%u") {
        let username = who.username.filter(|u| safe(u))?;
        filter = filter.replace("%u", username);
    }
    if filter.contains("%c") {
        if !safe(who.client_id) {
            return None;
        }
        filter = filter.replace("%c", who.client_id);
    }
    Some(filter)
}

/// The ACL in force, shared by every connected client's permissions so that a reload
/// (SIGHUP, `POST /api/v1/reload`) applies new rules to connected clients too. `None`: no
/// ACL, everything is allowed.
pub type LiveAcl = RwLock<Option<Arc<Acl>>>;

/// One client's [`Permissions`] under the [`LiveAcl`].
pub struct AclPermissions {
    acl: Arc<LiveAcl>,
    username: Option<String>,
    client_id: String,
}

impl AclPermissions {
    pub fn new(acl: Arc<LiveAcl>, username: Option<String>, client_id: String) -> AclPermissions {
        AclPermissions {
            acl,
            username,
            client_id,
        }
    }

    fn who(&self) -> Identity<'_> {
        Identity {
            username: self.username.as_deref(),
            client_id: &self.client_id,
        }
    }

    /// Asks the ACL in force now; without one, allows.
    fn ask(&self, question: impl FnOnce(&Acl, Identity<'_>) -> bool) -> bool {
        let acl = self.acl.read().unwrap_or_else(|e| e.into_inner()).clone();
        acl.is_none_or(|acl| question(&acl, self.who()))
    }
}

impl fmt::Debug for AclPermissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AclPermissions({:?}, {:?})",
            self.username, self.client_id
        )
    }
}

impl Permissions for AclPermissions {
    fn may_publish(&self, topic: &str) -> bool {
        self.ask(|acl, who| acl.may_publish(who, topic))
    }

    fn may_subscribe(&self, filter: &str) -> bool {
        self.ask(|acl, who| acl.may_subscribe(who, filter))
    }

    fn may_receive(&self, topic: &str) -> bool {
        self.ask(|acl, who| acl.may_receive(who, topic))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r##"
        [[rule]]
        permission = "deny"
        action = "subscribe"
        topics = ["secret/#"]

        [[rule]]
        permission = "allow"
        topics = ["users/%u/#", "devices/%c/#"]

        [[rule]]
        permission = "allow"
        user = "admin"
        topics = ["#"]

        [[rule]]
        permission = "allow"
        action = "subscribe"
        topics = ["public/#"]

        [[rule]]
        permission = "allow"
        client_id = "sensor-1"
        action = "publish"
        topics = ["public/temperature"]
    "##;

    fn acl() -> Acl {
        Acl::parse(FILE, Permission::Deny).unwrap()
    }

    fn user<'a>(name: &'a str, client_id: &'a str) -> Identity<'a> {
        Identity {
            username: Some(name),
            client_id,
        }
    }

    fn anonymous(client_id: &str) -> Identity<'_> {
        Identity {
            username: None,
            client_id,
        }
    }

    #[test]
    fn a_client_has_its_own_user_and_client_id_topics() {
        let acl = acl();
        assert!(acl.may_publish(user("alice", "a1"), "users/alice/x"));
        assert!(acl.may_subscribe(user("alice", "a1"), "users/alice/#"));
        assert!(!acl.may_publish(user("alice", "a1"), "users/bob/x"));
        assert!(acl.may_publish(anonymous("d7"), "devices/d7/status"));
        assert!(
            !acl.may_publish(anonymous("d7"), "users//x"),
            "no user name, no %u"
        );
    }

    #[test]
    fn substituted_values_cannot_widen_or_shift_a_filter() {
        let acl = acl();
        assert!(!acl.may_publish(anonymous("d7/../x"), "devices/d7/../x/y"));
        assert!(!acl.may_subscribe(anonymous("#"), "devices/#"));
        assert!(!acl.may_publish(user("alice/private", "c"), "users/alice/private/x"));
    }

    #[test]
    fn the_first_rule_that_applies_decides() {
        let acl = acl();
        // The admin may do anything, but the deny rule for secret/ comes first.
        assert!(acl.may_publish(user("admin", "adm"), "secret/plans"));
        assert!(!acl.may_subscribe(user("admin", "adm"), "secret/plans"));
        assert!(acl.may_subscribe(user("admin", "adm"), "other/#"));
        assert!(!acl.may_receive(user("admin", "adm"), "secret/plans"));
        assert!(acl.may_receive(user("admin", "adm"), "other/x"));
    }

    #[test]
    fn a_subscription_must_be_covered_by_a_rule() {
        let acl = acl();
        let bob = user("bob", "b1");
        assert!(acl.may_subscribe(bob, "public/#"));
        assert!(acl.may_subscribe(bob, "public/+/x"));
        assert!(
            acl.may_subscribe(bob, "$share/g/public/#"),
            "judged by its filter"
        );
        assert!(!acl.may_subscribe(bob, "#"), "wider than any rule");
        assert!(
            !acl.may_publish(bob, "public/x"),
            "the public rule is subscribe only"
        );
    }

    #[test]
    fn rules_can_name_a_client_id_and_nothing_else_is_allowed_by_default() {
        let acl = acl();
        assert!(acl.may_publish(anonymous("sensor-1"), "public/temperature"));
        assert!(!acl.may_publish(anonymous("sensor-2"), "public/temperature"));
        let open = Acl::parse(FILE, Permission::Allow).unwrap();
        assert!(open.may_publish(anonymous("sensor-2"), "public/temperature"));
        assert!(
            !open.may_subscribe(anonymous("x"), "secret/#"),
            "a deny rule still denies"
        );
    }

    #[test]
    fn a_bad_file_is_refused_with_the_reason() {
        for (text, wanted) in [
            ("[[rule]]\npermission = \"allow\"\ntopics = []", "no topics"),
            (
                "[[rule]]\npermission = \"allow\"\ntopics = [\"a/#/b\"]",
                "rule 1",
            ),
            (
                "[[rule]]\npermission = \"maybe\"\ntopics = [\"a\"]",
                "maybe",
            ),
            ("[[rule]]\npermission = \"allow\"\ntopic = [\"a\"]", "topic"),
            (
                "[[rule]]\npermission = \"allow\"\ntopics = [\"$share/g/a\"]",
                "shared",
            ),
        ] {
            let error = Acl::parse(text, Permission::Deny).unwrap_err();
            assert!(error.contains(wanted), "{text:?}: {error}");
        }
    }
}
