//! Contract §5: settings, read and checked once at start. A bad value stops the
//! function with a message that names the variable, rather than surfacing later
//! as a surprise in the middle of a termination.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub dlq_url: Option<String>,
    pub dry_run: bool,
    pub max_targets: usize,
    pub protect_tag: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { dlq_url: None, dry_run: false, max_targets: 100, protect_tag: "teardown:protect".to_owned() }
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
    pub fn from_env() -> Result<Settings, SettingsError> {
        Settings::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Settings, SettingsError> {
        let defaults = Settings::default();
        let error = |variable, value: &str, reason| SettingsError { variable, value: value.to_owned(), reason };

        let dlq_url = match lookup("DLQ_URL") {
            None => None,
            Some(url) if url.trim().is_empty() => None,
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => Some(url),
            Some(url) => {
                return Err(error("DLQ_URL", &url, "must be an SQS queue URL (https://…)"));
            }
        };

        let dry_run = match lookup("DRY_RUN").as_deref().map(str::trim) {
            None | Some("") => defaults.dry_run,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) => return Err(error("DRY_RUN", v, "must be true or false")),
        };

        let max_targets = match lookup("MAX_TARGETS").as_deref().map(str::trim) {
            None | Some("") => defaults.max_targets,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=10_000).contains(&n) => n,
                _ => {
                    return Err(error("MAX_TARGETS", v, "must be a whole number from 1 to 10000"));
                }
            },
        };

        let protect_tag = match lookup("PROTECT_TAG") {
            None => defaults.protect_tag,
            Some(tag) if (1..=128).contains(&tag.chars().count()) => tag,
            Some(tag) => {
                return Err(error("PROTECT_TAG", &tag, "must be a tag key of 1 to 128 characters"));
            }
        };

        Ok(Settings { dlq_url, dry_run, max_targets, protect_tag })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        ])
        .unwrap();
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
        ] {
            let e = read(&[(var, value)]).unwrap_err();
            assert_eq!(e.variable, var);
            assert!(e.to_string().starts_with(&format!("setting {var}=")), "{e}");
        }
    }
}
