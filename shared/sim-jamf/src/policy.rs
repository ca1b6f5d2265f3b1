//! Classic API policies: the typed parts the simulator acts on, read from and written to XML.
//!
//! A `PUT` is a partial update, as in Jamf Pro: only the sections it carries change. Inside
//! `general`, each element given replaces the stored one; a `scope` given replaces the whole
//! stored scope (targets, limitations and exclusions: what it leaves out is gone, so a client
//! that adds a group must send the exclusions back too); a `packages` list replaces the policy's
//! packages; any other known top-level section given replaces the stored section.
//!
//! Elements Jamf Pro's policy schema does not have are dropped, as Jamf drops them: a `notes` or
//! `priority` in `general`, a `priority` on a package, an unknown section. Known elements the
//! simulator does not act on (`self_service`, `scripts`, `trigger_other`, `limitations`, …) are
//! kept verbatim and returned by `GET`.

use std::collections::BTreeMap;

use crate::catalog::{Category, Package};
use crate::cluster::{Origin, Replica, Replicated};
use crate::fleet::Fleet;
use crate::xml::Element;

/// The elements of `general` Jamf Pro keeps besides those the simulator acts on.
const GENERAL_KEPT: &[&str] = &[
    "trigger",
    "trigger_enrollment_complete",
    "trigger_login",
    "trigger_logout",
    "trigger_network_state_changed",
    "trigger_startup",
    "trigger_other",
    "location_user_only",
    "target_drive",
    "offline",
    "date_time_limitations",
    "network_limitations",
    "override_default_settings",
    "network_requirements",
    "site",
];

/// The sections of a policy besides `general`, `scope` and `package_configuration`.
const SECTIONS_KEPT: &[&str] = &[
    "self_service",
    "scripts",
    "printers",
    "dock_items",
    "account_maintenance",
    "maintenance",
    "files_processes",
    "user_interaction",
    "disk_encryption",
    "reboot",
];

/// The parts of `scope` besides `all_computers`, `computers`, `computer_groups`, `exclusions`.
const SCOPE_KEPT: &[&str] = &[
    "buildings",
    "departments",
    "limit_to_users",
    "limitations",
    "jss_users",
    "jss_user_groups",
];

/// The parts of `scope/exclusions` besides `computers` and `computer_groups`.
const EXCLUSIONS_KEPT: &[&str] = &[
    "buildings",
    "departments",
    "users",
    "user_groups",
    "network_segments",
    "ibeacons",
    "jss_users",
    "jss_user_groups",
];

/// A refusal with the Classic API's status and the text of the page's second `<p>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: u16,
    pub(crate) message: String,
}

impl Refusal {
    pub(crate) fn conflict(message: &str) -> Self {
        Self {
            status: 409,
            message: format!("Error: {message}"),
        }
    }
}

/// What a policy can point at.
pub(crate) struct Refs<'a> {
    pub(crate) categories: &'a BTreeMap<u32, Category>,
    pub(crate) packages: &'a BTreeMap<u32, Package>,
    pub(crate) fleet: &'a Fleet,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Scope {
    pub(crate) all_computers: bool,
    pub(crate) computers: Vec<u32>,
    pub(crate) groups: Vec<u32>,
    pub(crate) excluded_computers: Vec<u32>,
    pub(crate) excluded_groups: Vec<u32>,
    extra: Vec<Element>,
    exclusions_extra: Vec<Element>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PolicyPackage {
    pub(crate) id: u32,
    action: String,
    fut: bool,
    feu: bool,
    update_autorun: bool,
}

impl PolicyPackage {
    /// Whether the policy installs it (action `Install`, or the cache-and-install ones).
    pub(crate) fn installs(&self) -> bool {
        matches!(
            self.action.as_str(),
            "Install" | "Install Cached" | "Install Cached Packages"
        )
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub(crate) id: u32,
    pub(crate) name: String,
    pub(crate) enabled: bool,
    pub(crate) trigger_checkin: bool,
    pub(crate) frequency: String,
    /// `none`, `check-in` or `trigger`: when a computer retries a run that failed.
    pub(crate) retry_event: String,
    /// How many times it retries (1 to 10; -1: not configured).
    pub(crate) retry_attempts: i64,
    pub(crate) notify_on_each_failed_retry: bool,
    pub(crate) category_id: Option<u32>,
    general_extra: Vec<Element>,
    pub(crate) scope: Scope,
    pub(crate) packages: Vec<PolicyPackage>,
    package_extra: Vec<Element>,
    sections: Vec<Element>,
    /// 1 after creation, one more for every successful update.
    pub(crate) revision: u32,
    /// Changes whenever the package list does (see the module documentation of `fleet`).
    pub(crate) package_generation: u32,
    pub(crate) origin: Option<Origin>,
    pub(crate) replica: Replica<Policy>,
}

impl Replicated for Policy {
    fn created(&self) -> Option<Origin> {
        self.origin
    }

    fn replica(&self) -> &Replica<Self> {
        &self.replica
    }

    fn replica_mut(&mut self) -> &mut Replica<Self> {
        &mut self.replica
    }
}

impl Policy {
    /// A policy as Jamf Pro makes one before applying the posted document: enabled, no triggers,
    /// once per computer, no retries, no category.
    pub(crate) fn blank(id: u32, origin: Option<Origin>) -> Self {
        Self {
            id,
            name: String::new(),
            enabled: true,
            trigger_checkin: false,
            frequency: "Once per computer".to_owned(),
            retry_event: "none".to_owned(),
            retry_attempts: -1,
            notify_on_each_failed_retry: false,
            category_id: None,
            general_extra: Vec::new(),
            scope: Scope::default(),
            packages: Vec::new(),
            package_extra: Vec::new(),
            sections: Vec::new(),
            revision: 0,
            package_generation: 0,
            origin,
            replica: Replica::default(),
        }
    }

    /// How many times a computer retries a failed run at its next check-in (0: never).
    pub(crate) fn check_in_retries(&self) -> u32 {
        if self.retry_event.eq_ignore_ascii_case("check-in") {
            u32::try_from(self.retry_attempts.clamp(0, 10)).unwrap_or(0)
        } else {
            0
        }
    }

    /// Whether the policy updates inventory after it runs (`<maintenance><recon>true`).
    pub(crate) fn updates_inventory(&self) -> bool {
        self.sections
            .iter()
            .find(|s| s.name == "maintenance")
            .and_then(|m| m.text_at("recon"))
            .is_some_and(|r| r.trim().eq_ignore_ascii_case("true"))
    }

    /// Applies a posted `<policy>` document (partial for an update).
    pub(crate) fn apply(&mut self, doc: &Element, refs: &Refs) -> Result<(), Refusal> {
        if doc.name != "policy" {
            return Err(Refusal {
                status: 400,
                message: "Error: the root element must be policy".to_owned(),
            });
        }
        for section in &doc.children {
            match section.name.as_str() {
                "general" => self.apply_general(section, refs)?,
                "scope" => self.apply_scope(section, refs)?,
                "package_configuration" => self.apply_packages(section, refs)?,
                known if SECTIONS_KEPT.contains(&known) => {
                    replace_by_name(&mut self.sections, section);
                }
                _ => {}
            }
        }
        if self.name.trim().is_empty() {
            return Err(Refusal::conflict("Problem with policy name"));
        }
        Ok(())
    }

    fn apply_general(&mut self, general: &Element, refs: &Refs) -> Result<(), Refusal> {
        for field in &general.children {
            match field.name.as_str() {
                "id" => {}
                "name" => field.text().clone_into(&mut self.name),
                "enabled" => self.enabled = flag(field),
                "trigger_checkin" => self.trigger_checkin = flag(field),
                "frequency" => field.text().clone_into(&mut self.frequency),
                "retry_event" => {
                    let event = field.text();
                    if !["none", "check-in", "trigger"]
                        .iter()
                        .any(|e| e.eq_ignore_ascii_case(event))
                    {
                        return Err(Refusal::conflict("Problem with retry_event"));
                    }
                    self.retry_event = event.to_ascii_lowercase();
                }
                "retry_attempts" => {
                    let attempts: i64 = field
                        .text()
                        .parse()
                        .map_err(|_| Refusal::conflict("Problem with retry_attempts"))?;
                    if attempts != -1 && !(1..=10).contains(&attempts) {
                        return Err(Refusal::conflict("Problem with retry_attempts"));
                    }
                    self.retry_attempts = attempts;
                }
                "notify_on_each_failed_retry" => self.notify_on_each_failed_retry = flag(field),
                "category" => self.category_id = resolve_category(field, refs)?,
                known if GENERAL_KEPT.contains(&known) => {
                    replace_by_name(&mut self.general_extra, field);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// A scope given replaces the whole stored scope.
    fn apply_scope(&mut self, scope: &Element, refs: &Refs) -> Result<(), Refusal> {
        let mut new = Scope::default();
        for part in &scope.children {
            match part.name.as_str() {
                "all_computers" => new.all_computers = flag(part),
                "computers" => new.computers = resolve_computers(part, refs)?,
                "computer_groups" => new.groups = resolve_groups(part, refs)?,
                "exclusions" => {
                    for excluded in &part.children {
                        match excluded.name.as_str() {
                            "computers" => {
                                new.excluded_computers = resolve_computers(excluded, refs)?;
                            }
                            "computer_groups" => {
                                new.excluded_groups = resolve_groups(excluded, refs)?;
                            }
                            known if EXCLUSIONS_KEPT.contains(&known) => {
                                replace_by_name(&mut new.exclusions_extra, excluded);
                            }
                            _ => {}
                        }
                    }
                }
                known if SCOPE_KEPT.contains(&known) => replace_by_name(&mut new.extra, part),
                _ => {}
            }
        }
        self.scope = new;
        Ok(())
    }

    fn apply_packages(&mut self, configuration: &Element, refs: &Refs) -> Result<(), Refusal> {
        for part in &configuration.children {
            if part.name != "packages" {
                if part.name == "distribution_point" {
                    replace_by_name(&mut self.package_extra, part);
                }
                continue;
            }
            let mut packages = Vec::new();
            for package in part.children_named("package") {
                let id = resolve(
                    package,
                    |id| refs.packages.contains_key(&id),
                    |name| {
                        refs.packages
                            .values()
                            .find(|p| p.name().eq_ignore_ascii_case(name))
                            .map(|p| p.id)
                    },
                )
                .ok_or_else(|| {
                    Refusal::conflict("Problem with package in package_configuration")
                })?;
                packages.push(PolicyPackage {
                    id,
                    action: package
                        .text_at("action")
                        .filter(|a| !a.is_empty())
                        .unwrap_or("Install")
                        .to_owned(),
                    fut: package.child("fut").is_some_and(flag),
                    feu: package.child("feu").is_some_and(flag),
                    update_autorun: package.child("update_autorun").is_some_and(flag),
                });
            }
            let ids = |list: &[PolicyPackage]| list.iter().map(|p| p.id).collect::<Vec<_>>();
            if ids(&packages) != ids(&self.packages) {
                self.package_generation += 1;
            }
            self.packages = packages;
        }
        Ok(())
    }

    /// The policy as `GET /JSSResource/policies/id/{id}` answers it.
    pub(crate) fn to_xml(&self, refs: &Refs) -> Element {
        let (category_id, category_name) =
            match self.category_id.and_then(|id| refs.categories.get(&id)) {
                Some(category) => (i64::from(category.id), category.name.clone()),
                None => (-1, "No category assigned".to_owned()),
            };
        let mut general = Element::new("general")
            .with(Element::leaf("id", self.id))
            .with(Element::leaf("name", &self.name))
            .with(Element::leaf("enabled", self.enabled));
        if !self.general_extra.iter().any(|e| e.name == "trigger") {
            general = general.with(Element::leaf("trigger", "EVENT"));
        }
        general = general
            .with(Element::leaf("trigger_checkin", self.trigger_checkin))
            .with(Element::leaf("frequency", &self.frequency))
            .with(Element::leaf("retry_event", &self.retry_event))
            .with(Element::leaf("retry_attempts", self.retry_attempts))
            .with(Element::leaf(
                "notify_on_each_failed_retry",
                self.notify_on_each_failed_retry,
            ))
            .with(
                Element::new("category")
                    .with(Element::leaf("id", category_id))
                    .with(Element::leaf("name", category_name)),
            );
        general = general.with_all(self.general_extra.iter().cloned());

        let computer = |id: &u32| {
            let name = refs
                .fleet
                .computers
                .get(id)
                .map(|c| c.spec.name.clone())
                .unwrap_or_default();
            Element::new("computer")
                .with(Element::leaf("id", id))
                .with(Element::leaf("name", name))
        };
        let group = |id: &u32| {
            let name = refs
                .fleet
                .groups
                .get(id)
                .map(|g| g.name.clone())
                .unwrap_or_default();
            Element::new("computer_group")
                .with(Element::leaf("id", id))
                .with(Element::leaf("name", name))
        };
        let scope = Element::new("scope")
            .with(Element::leaf("all_computers", self.scope.all_computers))
            .with(Element::list("computers").with_all(self.scope.computers.iter().map(computer)))
            .with(Element::list("computer_groups").with_all(self.scope.groups.iter().map(group)))
            .with_all(self.scope.extra.iter().cloned())
            .with(
                Element::new("exclusions")
                    .with(
                        Element::list("computers")
                            .with_all(self.scope.excluded_computers.iter().map(computer)),
                    )
                    .with(
                        Element::list("computer_groups")
                            .with_all(self.scope.excluded_groups.iter().map(group)),
                    )
                    .with_all(self.scope.exclusions_extra.iter().cloned()),
            );

        let packages = Element::list("packages")
            .with(Element::leaf("size", self.packages.len()))
            .with_all(self.packages.iter().map(|p| {
                let name = refs
                    .packages
                    .get(&p.id)
                    .map(|pkg| pkg.name().to_owned())
                    .unwrap_or_default();
                Element::new("package")
                    .with(Element::leaf("id", p.id))
                    .with(Element::leaf("name", name))
                    .with(Element::leaf("action", &p.action))
                    .with(Element::leaf("fut", p.fut))
                    .with(Element::leaf("feu", p.feu))
                    .with(Element::leaf("update_autorun", p.update_autorun))
            }));
        let package_configuration = Element::new("package_configuration")
            .with(packages)
            .with_all(self.package_extra.iter().cloned());

        Element::new("policy")
            .with(general)
            .with(scope)
            .with(package_configuration)
            .with_all(self.sections.iter().cloned())
    }
}

/// Classic API booleans: `true` in any case; anything else is false.
fn flag(element: &Element) -> bool {
    element.text().eq_ignore_ascii_case("true")
}

fn replace_by_name(list: &mut Vec<Element>, element: &Element) {
    match list.iter_mut().find(|e| e.name == element.name) {
        Some(existing) => *existing = element.clone(),
        None => list.push(element.clone()),
    }
}

/// An object named by `<id>` (when given and not 0 or -1) or else by `<name>`.
fn resolve(
    element: &Element,
    exists: impl Fn(u32) -> bool,
    by_name: impl Fn(&str) -> Option<u32>,
) -> Option<u32> {
    match element
        .text_at("id")
        .filter(|id| !id.is_empty() && *id != "0" && *id != "-1")
    {
        Some(id) => id.parse().ok().filter(|id| exists(*id)),
        None => by_name(element.text_at("name").unwrap_or_default()),
    }
}

fn resolve_category(element: &Element, refs: &Refs) -> Result<Option<u32>, Refusal> {
    let id = element.text_at("id").unwrap_or_default();
    let name = element.text_at("name").unwrap_or_default();
    let none = (id.is_empty() || id == "-1" || id == "0")
        && (name.is_empty() || name == "No category assigned");
    if none {
        return Ok(None);
    }
    resolve(
        element,
        |id| refs.categories.contains_key(&id),
        |name| {
            refs.categories
                .values()
                .find(|c| c.name.eq_ignore_ascii_case(name))
                .map(|c| c.id)
        },
    )
    .map(Some)
    .ok_or_else(|| Refusal::conflict("Problem with category"))
}

fn resolve_computers(list: &Element, refs: &Refs) -> Result<Vec<u32>, Refusal> {
    list.children_named("computer")
        .map(|c| {
            resolve(
                c,
                |id| refs.fleet.computers.contains_key(&id),
                |name| refs.fleet.computer_of_name(name).map(|c| c.spec.id),
            )
            .ok_or_else(|| Refusal::conflict("Problem with computer in scope"))
        })
        .collect()
}

fn resolve_groups(list: &Element, refs: &Refs) -> Result<Vec<u32>, Refusal> {
    list.children_named("computer_group")
        .map(|g| {
            resolve(
                g,
                |id| refs.fleet.groups.contains_key(&id),
                |name| refs.fleet.group_of_name(name).map(|g| g.id),
            )
            .ok_or_else(|| Refusal::conflict("Problem with computer group in scope"))
        })
        .collect()
}
