//! A client certificate's subject as a principal's name: the subject written as
//! RFC 2253 writes it (most specific first, `CN=app,OU=eng,O=Acme,C=US`, as Kafka's
//! broker shows it), then Kafka's `ssl.principal.mapping.rules` applied to it.

use regex::Regex;

/// Kafka's `ssl.principal.mapping.rules`: tried in order; the first that matches the
/// whole subject gives the name.
#[derive(Debug, Clone)]
pub struct MappingRules {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
enum Rule {
    /// The subject as it is.
    Default,
    /// `RULE:pattern/replacement/` with an optional case change.
    Replace { pattern: Regex, replacement: String, case: Case },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

/// Rules (and patterns) a configuration may hold.
const RULES_MAX: usize = 64;
const PATTERN_BYTES_MAX: usize = 1024;

impl MappingRules {
    /// Parses `DEFAULT` and `RULE:pattern/replacement/[LU]` entries. Kafka's own
    /// syntax, with `$1` for a group of the pattern; the pattern must match the whole
    /// subject.
    pub fn parse(rules: &[String]) -> Result<MappingRules, String> {
        if rules.len() > RULES_MAX {
            return Err(format!("{} rules: at most {RULES_MAX}", rules.len()));
        }
        let parsed = rules.iter().map(|rule| Rule::parse(rule.trim())).collect::<Result<Vec<_>, _>>()?;
        Ok(MappingRules { rules: parsed })
    }

    /// The name `subject` maps to, or `None` when no rule matches (the client is then
    /// refused: Kafka fails such a handshake too).
    pub fn map(&self, subject: &str) -> Option<String> {
        self.rules.iter().find_map(|rule| rule.apply(subject)).filter(|name| !name.is_empty())
    }
}

impl Rule {
    fn parse(text: &str) -> Result<Rule, String> {
        if text == "DEFAULT" {
            return Ok(Rule::Default);
        }
        let body =
            text.strip_prefix("RULE:").ok_or_else(|| format!("{text:?}: not DEFAULT or RULE:pattern/replacement/"))?;
        // pattern/replacement/flags: a `/` inside the pattern is written `\/`.
        let mut parts = Vec::new();
        let mut current = String::new();
        let mut chars = body.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek() == Some(&'/') => {
                    current.push('/');
                    chars.next();
                }
                '/' => parts.push(std::mem::take(&mut current)),
                other => current.push(other),
            }
        }
        let flags = current;
        let [pattern, replacement] = <[String; 2]>::try_from(parts)
            .map_err(|_| format!("{text:?}: a rule is RULE:pattern/replacement/ with an optional L or U at the end"))?;
        let case = match flags.as_str() {
            "" => Case::Keep,
            "L" => Case::Lower,
            "U" => Case::Upper,
            other => return Err(format!("{text:?}: {other:?} after the last '/' must be L, U or nothing")),
        };
        if pattern.len() > PATTERN_BYTES_MAX {
            return Err(format!("{text:?}: a pattern is at most {PATTERN_BYTES_MAX} bytes"));
        }
        let pattern =
            Regex::new(&format!("^(?:{pattern})$")).map_err(|error| format!("{text:?}: {}", one_line(&error)))?;
        Ok(Rule::Replace { pattern, replacement, case })
    }

    fn apply(&self, subject: &str) -> Option<String> {
        match self {
            Rule::Default => Some(subject.to_string()),
            Rule::Replace { pattern, replacement, case } => {
                let captures = pattern.captures(subject)?;
                let mut name = String::new();
                captures.expand(replacement, &mut name);
                Some(match case {
                    Case::Keep => name,
                    Case::Lower => name.to_lowercase(),
                    Case::Upper => name.to_uppercase(),
                })
            }
        }
    }
}

fn one_line(error: &regex::Error) -> String {
    error.to_string().lines().last().unwrap_or_default().trim().to_string()
}

/// The subject of the DER certificate `der` in RFC 2253's form, or `None` when it
/// cannot be read.
pub fn subject_of(der: &[u8]) -> Option<String> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(rfc2253(certificate.subject()))
}

/// RFC 2253: relative names from the last to the first, `,` between them, `+` between
/// the attributes of one; known attribute types by their short names, others by OID.
fn rfc2253(name: &x509_parser::x509::X509Name) -> String {
    let rdns: Vec<String> = name
        .iter()
        .map(|rdn| {
            let attributes: Vec<String> = rdn
                .iter()
                .map(|attribute| {
                    let oid = attribute.attr_type();
                    let key = short_name(&oid.to_id_string()).map_or_else(|| oid.to_id_string(), str::to_string);
                    let value = attribute.as_str().map_or_else(|_| hex_value(attribute.as_slice()), escape);
                    format!("{key}={value}")
                })
                .collect();
            attributes.join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// RFC 2253's short names (and Java's, which Kafka prints).
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// A string value with RFC 2253's special characters escaped.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i + 1 == value.chars().count() && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A value that is not a string: `#` and its DER bytes in hex.
fn hex_value(bytes: &[u8]) -> String {
    let mut out = String::from("#");
    for byte in bytes {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(list: &[&str]) -> MappingRules {
        MappingRules::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    /// Kafka's documented examples: the CN out of a subject, lower-cased, with
    /// DEFAULT behind it.
    #[test]
    fn kafkas_rules_map_a_subject() {
        let mapping =
            rules(&["RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L", "RULE:^CN=(.*?),OU=(.*?),O=.*$/$1@$2/", "DEFAULT"]);
        assert_eq!(mapping.map("CN=Kafka-Producer,OU=ServiceUsers,O=Acme,C=US").as_deref(), Some("kafka-producer"));
        assert_eq!(mapping.map("CN=admin,OU=Admin,O=Acme").as_deref(), Some("admin@Admin"));
        assert_eq!(mapping.map("O=Acme").as_deref(), Some("O=Acme"));
        assert_eq!(rules(&["RULE:^CN=([^,]+)$/$1/"]).map("CN=a,O=b"), None, "a pattern matches the whole subject");
        assert_eq!(rules(&["RULE:a\\/b/x/U"]).map("a/b").as_deref(), Some("X"));
    }

    #[test]
    fn bad_rules_are_refused_with_the_rule_named() {
        for bad in ["RULE:x", "RULE:(/y/", "RULE:x/y/Q", "NOPE"] {
            let error = MappingRules::parse(&[bad.to_string()]).unwrap_err();
            assert!(error.contains(bad) || error.contains(&format!("{bad:?}")), "{bad}: {error}");
        }
    }

    /// A certificate made with CN, OU and O reads back most specific first, with a
    /// comma in a value escaped.
    #[test]
    fn a_subject_reads_as_rfc_2253() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "Acme, Inc");
        params.distinguished_name.push(rcgen::DnType::OrganizationalUnitName, "eng");
        params.distinguished_name.push(rcgen::DnType::CommonName, "writer");
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        assert_eq!(subject_of(certificate.der()).as_deref(), Some("CN=writer,OU=eng,O=Acme\\, Inc"));
    }
}
