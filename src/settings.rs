//! docs/reference.md, "Settings": settings, read and checked once at start. A bad value stops the
//! function with a message that names the variable, rather than surfacing later
//! as a surprise in the middle of a termination.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub dlq_url: Option<String>,
    pub dry_run: bool,
    /// The kill switch: every request is a dry run, whatever it says.
    pub enforce_dry_run: bool,
    pub max_targets: usize,
    pub protect_tag: String,
    /// The request queue's `maxReceiveCount`: a message on its last delivery is
    /// settled with a record instead of being handed back to SQS.
    pub max_receives: Option<u64>,
    /// Calls in flight to any one service at once, across the whole invocation.
    pub max_calls_in_flight: usize,
    /// The request queue, where follow-up checks and fan-out children are sent
    /// (docs/reference.md, "Follow-up, audit events and metrics", "Accounts, regions and fan-out").
    pub request_queue_url: Option<String>,
    /// Seconds after acceptance within which a termination must be confirmed.
    pub confirm_within: u64,
    /// The EventBridge bus for audit events (docs/reference.md, "Follow-up, audit events and metrics").
    pub audit_bus: Option<String>,
    /// The DynamoDB table that keeps terminations across messages
    /// (docs/reference.md, "State across messages"); none: at-least-once follow-ups.
    pub state_table: Option<String>,
    pub metrics_namespace: String,
    /// The role assumed in other accounts (docs/reference.md, "Accounts, regions and fan-out").
    pub spoke_role_name: String,
    pub external_id: Option<String>,
    /// Accounts a request may name besides the function's own.
    pub allowed_accounts: Vec<String>,
    /// The most (account, region) pairs one fan-out may expand to.
    pub max_fanout: usize,
    /// The function's own timeout and its request queue's visibility timeout (seconds):
    /// how long a holder of a target can still act (docs/lifecycle.md, "The clocks").
    /// Unset, the longest each can be, so no hold ever ends early.
    pub function_timeout: u64,
    pub visibility_timeout: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            dlq_url: None,
            dry_run: false,
            enforce_dry_run: false,
            max_targets: 100,
            protect_tag: "teardown:protect".to_owned(),
            max_receives: None,
            max_calls_in_flight: crate::services::DEFAULT_CALLS_IN_FLIGHT,
            request_queue_url: None,
            confirm_within: 7200,
            audit_bus: None,
            state_table: None,
            metrics_namespace: "teardown".to_owned(),
            spoke_role_name: "teardown-spoke".to_owned(),
            external_id: None,
            allowed_accounts: Vec::new(),
            max_fanout: 100,
            function_timeout: 900,
            visibility_timeout: 43_200,
        }
    }
}

impl Settings {
    /// The lifecycle's clocks, from these settings (docs/lifecycle.md, "The clocks"). An
    /// unset `MAX_RECEIVES` counts as SQS's most, so a chain is never taken for lost early.
    pub fn bounds(&self) -> crate::lifecycle::Bounds {
        let seconds = |n: u64| i64::try_from(n).unwrap_or(i64::MAX / 4);
        crate::lifecycle::Bounds::from_settings(
            seconds(self.function_timeout),
            seconds(self.visibility_timeout),
            seconds(self.max_receives.unwrap_or(1000)),
            seconds(self.confirm_within),
        )
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("setting {variable}={value:?} is invalid: {reason}")]
pub struct SettingsError {
    pub variable: &'static str,
    pub value: String,
    pub reason: &'static str,
}

impl Settings {
    /// Whether a request that asked `asked` (its `dryRun`, if it said) is a dry run:
    /// the kill switch outranks what it says, and `DRY_RUN` speaks when it says nothing.
    pub fn dry_run_for(&self, asked: Option<bool>) -> bool {
        self.enforce_dry_run || asked.unwrap_or(self.dry_run)
    }

    pub fn from_env() -> Result<Settings, SettingsError> {
        Settings::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Settings, SettingsError> {
        let defaults = Settings::default();
        let error = |variable, value: &str, reason| SettingsError { variable, value: value.to_owned(), reason };

        let queue_url = |variable: &'static str| match lookup(variable) {
            None => Ok(None),
            Some(url) if url.trim().is_empty() => Ok(None),
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => Ok(Some(url)),
            Some(url) => Err(error(variable, &url, "must be an SQS queue URL (https://…)")),
        };
        let dlq_url = queue_url("DLQ_URL")?;
        let request_queue_url = queue_url("REQUEST_QUEUE_URL")?;
        if let Some(url) = &request_queue_url
            && url.ends_with(".fifo")
        {
            return Err(error(
                "REQUEST_QUEUE_URL",
                url,
                "must be a standard queue: FIFO queues refuse per-message delays",
            ));
        }

        let flag = |variable: &'static str, default: bool| match lookup(variable).as_deref().map(str::trim) {
            None | Some("") => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(error(variable, v, "must be true or false")),
        };
        let number =
            |variable: &'static str, range: std::ops::RangeInclusive<u64>, reason: &'static str| match lookup(variable)
                .as_deref()
                .map(str::trim)
            {
                None | Some("") => Ok(None),
                Some(v) => match v.parse::<u64>() {
                    Ok(n) if range.contains(&n) => Ok(Some(n)),
                    _ => Err(error(variable, v, reason)),
                },
            };

        let dry_run = flag("DRY_RUN", defaults.dry_run)?;
        let enforce_dry_run = flag("ENFORCE_DRY_RUN", defaults.enforce_dry_run)?;
        let max_targets = number("MAX_TARGETS", 1..=10_000, "must be a whole number from 1 to 10000")?
            .map_or(defaults.max_targets, |n| n as usize);
        let max_receives = number("MAX_RECEIVES", 1..=1000, "must be a whole number from 1 to 1000")?;
        let max_calls_in_flight = number("MAX_CALLS_IN_FLIGHT", 1..=256, "must be a whole number from 1 to 256")?
            .map_or(defaults.max_calls_in_flight, |n| n as usize);

        let protect_tag = match lookup("PROTECT_TAG") {
            None => defaults.protect_tag,
            Some(tag) if (1..=128).contains(&tag.chars().count()) => tag,
            Some(tag) => {
                return Err(error("PROTECT_TAG", &tag, "must be a tag key of 1 to 128 characters"));
            }
        };

        let confirm_within =
            number("CONFIRM_WITHIN", 300..=43_200, "must be a whole number of seconds from 300 to 43200")?
                .unwrap_or(defaults.confirm_within);
        let audit_bus = lookup("AUDIT_BUS").filter(|bus| !bus.trim().is_empty());
        let state_table = match lookup("STATE_TABLE").filter(|t| !t.trim().is_empty()) {
            None => None,
            // A table name (3 to 255 of [a-zA-Z0-9_.-]) or its ARN.
            Some(table)
                if (3..=2048).contains(&table.len())
                    && table.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-:/".contains(&b)) =>
            {
                Some(table)
            }
            Some(table) => return Err(error("STATE_TABLE", &table, "must be a DynamoDB table name or ARN")),
        };
        let metrics_namespace = match lookup("METRICS_NAMESPACE") {
            None => defaults.metrics_namespace,
            Some(ns) if (1..=255).contains(&ns.chars().count()) && !ns.contains(':') => ns,
            Some(ns) => {
                return Err(error("METRICS_NAMESPACE", &ns, "must be a CloudWatch namespace of 1 to 255 characters"));
            }
        };

        let spoke_role_name = match lookup("SPOKE_ROLE_NAME") {
            None => defaults.spoke_role_name,
            Some(name)
                if (1..=64).contains(&name.len())
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b)) =>
            {
                name
            }
            Some(name) => return Err(error("SPOKE_ROLE_NAME", &name, "must be an IAM role name")),
        };
        let external_id = match lookup("EXTERNAL_ID") {
            None => None,
            Some(id) if id.is_empty() => None,
            Some(id) if (2..=1224).contains(&id.len()) => Some(id),
            Some(id) => return Err(error("EXTERNAL_ID", &id, "must be 2 to 1224 characters")),
        };
        let mut allowed_accounts = Vec::new();
        for account in
            lookup("ALLOWED_ACCOUNTS").unwrap_or_default().split(',').map(str::trim).filter(|a| !a.is_empty())
        {
            if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
                return Err(error("ALLOWED_ACCOUNTS", account, "must be comma-separated 12-digit account ids"));
            }
            allowed_accounts.push(account.to_owned());
        }
        let max_fanout = number("MAX_FANOUT", 1..=1000, "must be a whole number from 1 to 1000")?
            .map_or(defaults.max_fanout, |n| n as usize);
        let function_timeout = number("FUNCTION_TIMEOUT", 1..=900, "must be a whole number of seconds from 1 to 900")?
            .unwrap_or(defaults.function_timeout);
        let visibility_timeout =
            number("VISIBILITY_TIMEOUT", 0..=43_200, "must be a whole number of seconds from 0 to 43200")?
                .unwrap_or(defaults.visibility_timeout);

        Ok(Settings {
            function_timeout,
            visibility_timeout,
            spoke_role_name,
            external_id,
            allowed_accounts,
            max_fanout,
            dlq_url,
            dry_run,
            enforce_dry_run,
            max_targets,
            protect_tag,
            max_receives,
            max_calls_in_flight,
            request_queue_url,
            confirm_within,
            audit_bus,
            state_table,
            metrics_namespace,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lifecycles_clocks_come_from_the_function_and_queue_settings() {
        let deployed = read(&[("FUNCTION_TIMEOUT", "60"), ("VISIBILITY_TIMEOUT", "360"), ("MAX_RECEIVES", "5")])
            .expect("valid settings");
        let bounds = deployed.bounds();
        assert_eq!((bounds.call, bounds.check, bounds.confirm_within), (60 + 60, 360 * 5 + 900 + 60, 7200));
        // Unset, every hold lasts as long as its holder could: never shorter.
        let unset = read(&[]).expect("valid settings").bounds();
        assert!(unset.call >= 900 + 60 && unset.check >= 43_200 * 1000, "{unset:?}");
        for bad in [("FUNCTION_TIMEOUT", "0"), ("FUNCTION_TIMEOUT", "901"), ("VISIBILITY_TIMEOUT", "43201")] {
            let message = read(&[bad]).expect_err("refused").to_string();
            assert!(message.contains(bad.0), "{message}");
        }
    }

    fn read(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        assert_eq!(read(&[]).unwrap(), Settings::default());
        assert_eq!(read(&[]).unwrap().max_targets, 100);
    }

    #[test]
    fn valid_values_are_read() {
        let s = read(&[
            ("DLQ_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/teardown-dlq"),
            ("DRY_RUN", "TRUE"),
            ("MAX_TARGETS", "10000"),
            ("PROTECT_TAG", "keep"),
            ("ENFORCE_DRY_RUN", "true"),
            ("MAX_RECEIVES", "5"),
            ("MAX_CALLS_IN_FLIGHT", "4"),
            ("REQUEST_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/teardown-requests"),
            ("CONFIRM_WITHIN", "300"),
            ("AUDIT_BUS", "teardown-audit"),
            ("METRICS_NAMESPACE", "platform/teardown"),
            ("ALLOWED_ACCOUNTS", "111122223333, 444455556666"),
            ("MAX_FANOUT", "1000"),
            ("SPOKE_ROLE_NAME", "org-teardown"),
            ("EXTERNAL_ID", "platform-7"),
        ])
        .unwrap();
        assert_eq!(s.allowed_accounts, vec!["111122223333", "444455556666"]);
        assert_eq!(
            (s.max_fanout, s.spoke_role_name.as_str(), s.external_id.as_deref()),
            (1000, "org-teardown", Some("platform-7"))
        );
        assert_eq!(s.confirm_within, 300);
        assert_eq!(
            (s.audit_bus.as_deref(), s.metrics_namespace.as_str()),
            (Some("teardown-audit"), "platform/teardown")
        );
        assert!(s.enforce_dry_run);
        assert_eq!((s.max_receives, s.max_calls_in_flight), (Some(5), 4));
        assert_eq!(s.dlq_url.as_deref(), Some("https://sqs.us-east-1.amazonaws.com/123456789012/teardown-dlq"));
        assert!(s.dry_run);
        assert_eq!((s.max_targets, s.protect_tag.as_str()), (10000, "keep"));
        assert_eq!(read(&[("MAX_TARGETS", "1")]).unwrap().max_targets, 1);
    }

    #[test]
    fn invalid_values_name_the_variable() {
        for (var, value) in [
            ("DLQ_URL", "teardown-dlq"),
            ("DRY_RUN", "yes"),
            ("MAX_TARGETS", "0"),
            ("MAX_TARGETS", "10001"),
            ("MAX_TARGETS", "-5"),
            ("MAX_TARGETS", "many"),
            ("PROTECT_TAG", ""),
            ("ENFORCE_DRY_RUN", "on"),
            ("MAX_RECEIVES", "0"),
            ("MAX_RECEIVES", "1001"),
            ("MAX_CALLS_IN_FLIGHT", "0"),
            ("MAX_CALLS_IN_FLIGHT", "257"),
            ("REQUEST_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/teardown-requests.fifo"),
            ("REQUEST_QUEUE_URL", "teardown-requests"),
            ("CONFIRM_WITHIN", "299"),
            ("CONFIRM_WITHIN", "43201"),
            ("METRICS_NAMESPACE", ""),
            ("ALLOWED_ACCOUNTS", "111122223333,12345"),
            ("MAX_FANOUT", "1001"),
            ("SPOKE_ROLE_NAME", "a role"),
        ] {
            let e = read(&[(var, value)]).unwrap_err();
            assert_eq!(e.variable, var);
            assert!(e.to_string().starts_with(&format!("setting {var}=")), "{e}");
        }
    }
}
