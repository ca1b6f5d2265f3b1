//! Reading `template.yaml`: its resources, and the few intrinsic functions the local stack needs
//! to resolve (`!Ref`, `!Sub`, `!GetAtt …Arn`). One source of truth: the local stack creates what
//! the template declares, not a second list kept by hand.

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow, bail};
use serde_norway::Value;

/// A resource of the template.
#[derive(Debug, Clone)]
pub struct Resource {
    pub kind: String,
    pub properties: Value,
}

/// The template's resources, by logical id.
#[derive(Debug, Clone)]
pub struct Template {
    pub resources: BTreeMap<String, Resource>,
}

impl Template {
    pub fn parse(yaml: &str) -> Result<Template> {
        let doc: Value = serde_norway::from_str(yaml).context("template.yaml is not YAML")?;
        let resources = doc
            .get("Resources")
            .and_then(Value::as_mapping)
            .ok_or_else(|| anyhow!("the template has no Resources"))?;
        let mut out = BTreeMap::new();
        for (k, v) in resources {
            let id = k
                .as_str()
                .ok_or_else(|| anyhow!("a resource id is not a string"))?
                .to_owned();
            let kind = v
                .get("Type")
                .and_then(Value::as_str)
                .ok_or_else(|| anyhow!("{id} has no Type"))?
                .to_owned();
            let properties = v.get("Properties").cloned().unwrap_or(Value::Null);
            out.insert(id, Resource { kind, properties });
        }
        Ok(Template { resources: out })
    }

    /// The resources of one type, in logical-id order.
    pub fn of_type<'a>(
        &'a self,
        kind: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a Resource)> + 'a {
        self.resources
            .iter()
            .filter(move |(_, r)| r.kind == kind)
            .map(|(id, r)| (id.as_str(), r))
    }
}

/// What names and ARNs resolve to.
#[derive(Debug, Clone, Default)]
pub struct Names {
    /// Parameters (`Stage`, …) and pseudo parameters (`AWS::Region`, …).
    pub params: BTreeMap<String, String>,
    /// `!Ref <resource>` → its physical name or URL.
    pub refs: BTreeMap<String, String>,
    /// `!GetAtt <resource>.Arn` → its ARN.
    pub arns: BTreeMap<String, String>,
}

impl Names {
    fn lookup(&self, name: &str) -> Result<String> {
        if let Some(res) = name.strip_suffix(".Arn") {
            return self
                .arns
                .get(res)
                .cloned()
                .ok_or_else(|| anyhow!("no ARN known for {res}"));
        }
        self.params
            .get(name)
            .or_else(|| self.refs.get(name))
            .cloned()
            .ok_or_else(|| anyhow!("nothing known as {name}"))
    }

    /// Resolves a string, `!Ref`, `!Sub` or `!GetAtt` value to a string.
    pub fn resolve(&self, v: &Value) -> Result<String> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            Value::Tagged(t) => {
                let arg = t
                    .value
                    .as_str()
                    .ok_or_else(|| anyhow!("{} needs a string argument", t.tag))?;
                match t.tag.to_string().as_str() {
                    "!Ref" | "!GetAtt" => self.lookup(arg),
                    "!Sub" => {
                        let mut out = String::new();
                        let mut rest = arg;
                        while let Some(start) = rest.find("${") {
                            out.push_str(&rest[..start]);
                            let end = rest[start..]
                                .find('}')
                                .ok_or_else(|| anyhow!("unclosed ${{ in {arg}"))?
                                + start;
                            out.push_str(&self.lookup(&rest[start + 2..end])?);
                            rest = &rest[end + 1..];
                        }
                        out.push_str(rest);
                        Ok(out)
                    }
                    other => bail!("the local stack does not resolve {other}"),
                }
            }
            other => bail!("cannot resolve {other:?} to a string"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_the_intrinsics_the_template_uses() {
        let t = Template::parse(
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      QueueName: !Sub eucora-${Stage}-scoring\n      RedrivePolicy:\n        deadLetterTargetArn: !GetAtt D.Arn\n",
        )
        .unwrap();
        let mut names = Names::default();
        names.params.insert("Stage".into(), "local".into());
        names
            .arns
            .insert("D".into(), "arn:aws:sqs:us-east-1:123456789012:dlq".into());
        let q = &t.resources["Q"].properties;
        assert_eq!(
            names.resolve(&q["QueueName"]).unwrap(),
            "eucora-local-scoring"
        );
        assert_eq!(
            names
                .resolve(&q["RedrivePolicy"]["deadLetterTargetArn"])
                .unwrap(),
            "arn:aws:sqs:us-east-1:123456789012:dlq"
        );
        assert!(
            names
                .resolve(&serde_norway::from_str::<Value>("!Ref Nope").unwrap())
                .is_err()
        );
    }
}
