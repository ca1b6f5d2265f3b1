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

    /// Every SQS trigger (`AWS::Lambda::EventSourceMapping`): the function's and the queue's
    /// logical ids, and the batch size.
    pub fn sqs_triggers(&self) -> Result<Vec<Trigger>> {
        self.of_type("AWS::Lambda::EventSourceMapping")
            .map(|(id, r)| {
                let p = &r.properties;
                let target = |v: &Value| match v {
                    Value::Tagged(t) => t
                        .value
                        .as_str()
                        .map(|s| s.trim_end_matches(".Arn").to_owned()),
                    _ => None,
                };
                Ok(Trigger {
                    function: target(&p["FunctionName"])
                        .ok_or_else(|| anyhow!("{id}.FunctionName is not a !Ref"))?,
                    queue: target(&p["EventSourceArn"])
                        .ok_or_else(|| anyhow!("{id}.EventSourceArn is not a !GetAtt"))?,
                    batch_size: p["BatchSize"]
                        .as_i64()
                        .and_then(|n| i32::try_from(n).ok())
                        .unwrap_or(10),
                })
            })
            .collect()
    }

    /// The `rate(…)` of a function's `ScheduleV2` event.
    pub fn schedule_rate(&self, function: &str) -> Result<std::time::Duration> {
        let events = &self
            .resources
            .get(function)
            .ok_or_else(|| anyhow!("no {function} in the template"))?
            .properties["Events"];
        let expr = events
            .as_mapping()
            .into_iter()
            .flatten()
            .find(|(_, e)| e["Type"].as_str() == Some("ScheduleV2"))
            .and_then(|(_, e)| e["Properties"]["ScheduleExpression"].as_str())
            .ok_or_else(|| anyhow!("{function} has no ScheduleV2 event"))?;
        parse_rate(expr)
    }
}

/// An SQS event-source mapping of the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    pub function: String,
    pub queue: String,
    pub batch_size: i32,
}

/// `rate(5 minutes)` → 300 s.
pub fn parse_rate(expr: &str) -> Result<std::time::Duration> {
    let inner = expr
        .strip_prefix("rate(")
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| anyhow!("{expr} is not a rate(…) expression"))?;
    let (n, unit) = inner
        .split_once(' ')
        .ok_or_else(|| anyhow!("{expr}: rate(<n> <unit>)"))?;
    let n: u64 = n.parse().with_context(|| format!("{expr}: the number"))?;
    let secs = match unit.trim_end_matches('s') {
        "minute" => 60,
        "hour" => 3600,
        "day" => 86_400,
        other => bail!("{expr}: unknown unit {other}"),
    };
    Ok(std::time::Duration::from_secs(n * secs))
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
    fn reads_the_triggers_and_the_schedule_of_the_real_template() {
        let t = Template::parse(include_str!("../../../../template.yaml")).unwrap();
        let triggers = t.sqs_triggers().unwrap();
        assert!(triggers.contains(&Trigger {
            function: "ConnectorIntuneFunction".into(),
            queue: "IntuneQueue".into(),
            batch_size: 5
        }));
        assert_eq!(triggers.len(), 3);
        assert_eq!(
            t.schedule_rate("GateEvaluationFunction").unwrap(),
            std::time::Duration::from_secs(300)
        );
        assert!(parse_rate("cron(0 * * * ? *)").is_err());
        assert_eq!(parse_rate("rate(1 hour)").unwrap().as_secs(), 3600);
    }

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

    #[test]
    fn every_route_of_the_api_is_an_event_of_its_function_in_the_template() {
        let raw: Value = serde_norway::from_str(include_str!("../../../../template.yaml")).unwrap();
        let resources = raw["Resources"].as_mapping().unwrap();
        let mut declared = std::collections::BTreeSet::new();
        for (_, r) in resources {
            if r["Type"].as_str() != Some("AWS::Serverless::Function") {
                continue;
            }
            let binary = r["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .unwrap_or_default();
            if let Some(events) = r["Properties"]["Events"].as_mapping() {
                for (_, e) in events {
                    if e["Type"].as_str() == Some("HttpApi") {
                        let p = &e["Properties"];
                        declared.insert((
                            binary.to_owned(),
                            p["Method"].as_str().unwrap_or_default().to_owned(),
                            p["Path"].as_str().unwrap_or_default().to_owned(),
                        ));
                    }
                }
            }
        }
        for route in eucora_api::routes::ROUTES {
            let key = (
                route.function.to_owned(),
                route.method.to_owned(),
                route.path.to_owned(),
            );
            assert!(
                declared.contains(&key),
                "{} {} ({}) has no HttpApi event in template.yaml",
                route.method,
                route.path,
                route.function
            );
        }
    }
}
