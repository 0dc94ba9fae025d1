//! Query strings as the apiserver reads them: repeated keys kept in order (exec's `command`),
//! booleans parsed like apimachinery's `Convert_Slice_string_To_bool`.

/// The decoded `key=value` pairs of a request's query string, in order.
#[derive(Debug, Clone, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub fn parse(query: Option<&str>) -> Self {
        let pairs = form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Self { pairs }
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Absent, `0` or any case of `false` is false; anything else (even empty) is true.
    pub fn flag(&self, key: &str) -> bool {
        match self.get(key) {
            None => false,
            Some(v) => !(v == "0" || v.eq_ignore_ascii_case("false")),
        }
    }

    /// A non-empty value, or None.
    pub fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_keep_their_order() {
        let p = Params::parse(Some(
            "command=sh&command=-c&command=echo+out%3B+exit+0&stdin=true",
        ));
        assert_eq!(p.all("command"), vec!["sh", "-c", "echo out; exit 0"]);
    }

    #[test]
    fn booleans_follow_apimachinery() {
        let p = Params::parse(Some("a=true&b=false&c=&d=0&e=True&f=FALSE&g=1"));
        assert!(p.flag("a"));
        assert!(!p.flag("b"));
        assert!(p.flag("c"));
        assert!(!p.flag("d"));
        assert!(p.flag("e"));
        assert!(!p.flag("f"));
        assert!(p.flag("g"));
        assert!(!p.flag("missing"));
    }
}
