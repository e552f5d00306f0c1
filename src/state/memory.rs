//! An in-memory state store with the same all-or-nothing `apply` as SQLite. It outlives an
//! executor that is "killed" in tests, which is what a durable file does in production.

use super::*;

#[derive(Debug, Clone, Default)]
struct Data {
    next_link: i64,
    links: BTreeMap<LinkId, Link>,
    cursors: BTreeMap<CursorKey, String>,
    statuses: BTreeMap<(String, ObjectKind, SyncDirection), StatusEntry>,
    resets: BTreeMap<String, ResetMark>,
    errors: Vec<ErrorEntry>,
    activity: Vec<ActivityEntry>,
    journal: BTreeMap<String, JournalEntry>,
    unresolved: Vec<UnresolvedItem>,
    revisions: Vec<ConfigRevision>,
    rep_emails: BTreeMap<String, String>,
    applied_plans: Vec<String>,
    rep_facts: BTreeMap<String, RepFacts>,
    system_facts: Option<SystemFacts>,
    acknowledgements: BTreeMap<String, Acknowledgement>,
    shared: BTreeMap<u64, SharedCycle>,
    groups: BTreeMap<(u64, u64), RepGroup>,
    claims: Vec<Claim>,
}

/// A cycle shared by workers: who reads the org until when, the read, and when it finished.
#[derive(Debug, Clone)]
struct SharedCycle {
    started_at: DateTime<Utc>,
    reader: String,
    lease_until: DateTime<Utc>,
    org_read: Option<String>,
    finished: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct MemoryState {
    data: Data,
    plan_key: crate::secret::Secret,
    /// Number of `apply` calls, so tests can count state transactions.
    pub transactions: u64,
}

impl Default for MemoryState {
    fn default() -> Self {
        MemoryState {
            data: Data::default(),
            plan_key: super::sqlite::new_signing_key()
                .unwrap_or_else(|_| crate::secret::Secret::new("memory-state-key")),
            transactions: 0,
        }
    }
}

impl MemoryState {
    pub fn new() -> Self {
        Self::default()
    }
}

fn apply_one(d: &mut Data, change: StateChange) {
    match change {
        StateChange::PutLink { id, link } => {
            let id = id.unwrap_or_else(|| {
                d.next_link += 1;
                LinkId(d.next_link)
            });
            d.links.insert(id, link);
        }
        StateChange::DeleteLink(id) => {
            d.links.remove(&id);
        }
        StateChange::ClearRep { rep } => {
            d.links.retain(|_, l| l.rep != rep);
            d.cursors
                .retain(|k, _| !matches!(k, CursorKey::Folder { rep: r, .. } if *r == rep));
        }
        StateChange::SetCursor { key, value } => match value {
            Some(v) => {
                d.cursors.insert(key, v);
            }
            None => {
                d.cursors.remove(&key);
            }
        },
        StateChange::SetStatus(s) => {
            d.statuses.insert((s.rep.clone(), s.object, s.direction), s);
        }
        StateChange::SetResetMark { rep, mark } => match mark {
            Some(m) => {
                d.resets.insert(rep, m);
            }
            None => {
                d.resets.remove(&rep);
            }
        },
        StateChange::AddError(e) => d.errors.push(e),
        StateChange::Acknowledge(a) => {
            d.acknowledgements.insert(a.record_id.clone(), a);
        }
        StateChange::AddActivity(a) => d.activity.push(a),
        StateChange::JournalAdd(j) => {
            d.journal.insert(j.marker.clone(), j);
        }
        StateChange::JournalDone { marker } => {
            d.journal.remove(&marker);
        }
        StateChange::AddUnresolved(u) => d.unresolved.push(u),
        StateChange::SetRepEmail { rep, email } => {
            d.rep_emails.insert(rep, email);
        }
        StateChange::RecordApply {
            canonical,
            hash,
            applied_at,
            applied_by,
        } => {
            let generation = d.revisions.len() as u64 + 1;
            d.revisions.push(ConfigRevision {
                generation,
                canonical,
                hash,
                applied_at,
                applied_by,
            });
        }
        StateChange::RecordPlanApplied { plan_id, .. } => d.applied_plans.push(plan_id),
        StateChange::SetRepFacts(f) => {
            d.rep_facts.insert(f.email.clone(), f);
        }
        StateChange::SetSystemFacts(f) => d.system_facts = Some(f),
        StateChange::GroupDone {
            generation,
            group,
            held,
            at,
        } => {
            if let Some(g) = d.groups.get_mut(&(generation, group)) {
                g.done_at = Some(at);
                g.held = held;
                let worker = g.worker.clone();
                if let Some(c) = d.claims.iter_mut().rev().find(|c| {
                    c.generation == generation
                        && c.group == group
                        && Some(&c.worker) == worker.as_ref()
                }) {
                    c.until = c.until.min(at);
                }
            }
        }
        StateChange::FinishSharedCycle { generation, at } => {
            if let Some(c) = d.shared.get_mut(&generation) {
                c.finished = Some(at);
            }
        }
    }
}

impl StateStore for MemoryState {
    fn apply(&mut self, changes: Vec<StateChange>) -> Result<(), StateError> {
        // Only finishing a finished cycle can fail: checked first, so applying in place is
        // all-or-nothing.
        for c in &changes {
            if let StateChange::FinishSharedCycle { generation, .. } = c
                && self
                    .data
                    .shared
                    .get(generation)
                    .is_none_or(|s| s.finished.is_some())
            {
                return Err(super::already_finished(*generation));
            }
        }
        for c in changes {
            apply_one(&mut self.data, c);
        }
        self.transactions += 1;
        Ok(())
    }

    fn links(&self, rep: &str, object: ObjectKind) -> Result<Vec<(LinkId, Link)>, StateError> {
        Ok(self
            .data
            .links
            .iter()
            .filter(|(_, l)| l.rep == rep && l.object == object)
            .map(|(i, l)| (*i, l.clone()))
            .collect())
    }

    fn all_links(&self) -> Result<Vec<(LinkId, Link)>, StateError> {
        Ok(self
            .data
            .links
            .iter()
            .map(|(i, l)| (*i, l.clone()))
            .collect())
    }

    fn cursor(&self, key: &CursorKey) -> Result<Option<String>, StateError> {
        Ok(self.data.cursors.get(key).cloned())
    }

    fn status(
        &self,
        rep: &str,
        object: ObjectKind,
        direction: SyncDirection,
    ) -> Result<Option<StatusEntry>, StateError> {
        Ok(self
            .data
            .statuses
            .get(&(rep.to_string(), object, direction))
            .cloned())
    }

    fn statuses(&self) -> Result<Vec<StatusEntry>, StateError> {
        Ok(self.data.statuses.values().cloned().collect())
    }

    fn reset_marks(&self) -> Result<BTreeMap<String, ResetMark>, StateError> {
        Ok(self.data.resets.clone())
    }

    fn errors(&self) -> Result<Vec<ErrorEntry>, StateError> {
        Ok(self.data.errors.clone())
    }

    fn acknowledgements(&self) -> Result<BTreeMap<String, Acknowledgement>, StateError> {
        Ok(self.data.acknowledgements.clone())
    }

    fn activity_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<BTreeMap<ObjectKind, u64>, StateError> {
        let mut out = BTreeMap::new();
        for a in self.data.activity.iter().filter(|a| a.at >= since) {
            *out.entry(a.object).or_insert(0) += a.records;
        }
        Ok(out)
    }

    fn last_activity(&self) -> Result<BTreeMap<ObjectKind, DateTime<Utc>>, StateError> {
        let mut out: BTreeMap<ObjectKind, DateTime<Utc>> = BTreeMap::new();
        for a in &self.data.activity {
            let last = out.entry(a.object).or_insert(a.at);
            *last = (*last).max(a.at);
        }
        Ok(out)
    }

    fn rep_facts(&self) -> Result<Vec<RepFacts>, StateError> {
        Ok(self.data.rep_facts.values().cloned().collect())
    }

    fn system_facts(&self) -> Result<Option<SystemFacts>, StateError> {
        Ok(self.data.system_facts.clone())
    }

    fn pending_creates(&self) -> Result<Vec<JournalEntry>, StateError> {
        Ok(self.data.journal.values().cloned().collect())
    }

    fn rep_emails(&self) -> Result<BTreeMap<String, String>, StateError> {
        Ok(self.data.rep_emails.clone())
    }

    fn unresolved(&self, rep: &str) -> Result<Vec<UnresolvedItem>, StateError> {
        Ok(self
            .data
            .unresolved
            .iter()
            .filter(|u| u.rep == rep)
            .cloned()
            .collect())
    }

    fn generation(&self) -> Result<u64, StateError> {
        Ok(self.data.revisions.len() as u64)
    }

    fn plan_signing_key(&self) -> Result<crate::secret::Secret, StateError> {
        Ok(self.plan_key.clone())
    }

    fn latest_revision(&self) -> Result<Option<ConfigRevision>, StateError> {
        Ok(self.data.revisions.last().cloned())
    }

    fn applied_plans(&self) -> Result<Vec<String>, StateError> {
        Ok(self.data.applied_plans.clone())
    }

    fn read_turn(
        &mut self,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        interval: chrono::Duration,
    ) -> Result<ReadTurn, StateError> {
        let shared = &mut self.data.shared;
        let last = shared.iter_mut().next_back();
        Ok(match last {
            Some((g, c)) if c.finished.is_none() && c.org_read.is_some() => ReadTurn::Join(*g),
            Some((_, c)) if c.finished.is_none() && c.lease_until > now && c.reader != worker => {
                ReadTurn::Wait
            }
            Some((g, c)) if c.finished.is_none() => {
                c.reader = worker.to_string();
                c.lease_until = lease_until;
                ReadTurn::Read(*g)
            }
            Some((_, c)) if now < c.started_at + interval => ReadTurn::Wait,
            last => {
                let generation = last.map_or(1, |(g, _)| g + 1);
                shared.insert(
                    generation,
                    SharedCycle {
                        started_at: now,
                        reader: worker.to_string(),
                        lease_until,
                        org_read: None,
                        finished: None,
                    },
                );
                ReadTurn::Read(generation)
            }
        })
    }

    fn publish_org_read(
        &mut self,
        generation: u64,
        org_read: &str,
        groups: &[Vec<String>],
    ) -> Result<(), StateError> {
        let Some(c) = self.data.shared.get_mut(&generation) else {
            return Err(StateError::new(
                format!("no cycle {generation} to publish an org read for"),
                "report this",
            ));
        };
        c.org_read = Some(org_read.to_string());
        for (i, reps) in groups.iter().enumerate() {
            let group = i as u64;
            self.data.groups.insert(
                (generation, group),
                RepGroup {
                    generation,
                    group,
                    reps: reps.clone(),
                    worker: None,
                    lease_until: None,
                    done_at: None,
                    held: Vec::new(),
                },
            );
        }
        Ok(())
    }

    fn org_read(&self, generation: u64) -> Result<Option<String>, StateError> {
        Ok(self
            .data
            .shared
            .get(&generation)
            .and_then(|c| c.org_read.clone()))
    }

    fn claim_group(
        &mut self,
        generation: u64,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<RepGroup>, StateError> {
        let free = self.data.groups.values_mut().find(|g| {
            g.generation == generation
                && g.done_at.is_none()
                && g.lease_until.is_none_or(|until| until <= now)
        });
        let Some(g) = free else {
            return Ok(None);
        };
        g.worker = Some(worker.to_string());
        g.lease_until = Some(lease_until);
        self.data.claims.push(Claim {
            generation,
            group: g.group,
            worker: worker.to_string(),
            claimed_at: now,
            until: lease_until,
        });
        Ok(Some(g.clone()))
    }

    fn rep_groups(&self, generation: u64) -> Result<Vec<RepGroup>, StateError> {
        Ok(self
            .data
            .groups
            .values()
            .filter(|g| g.generation == generation)
            .cloned()
            .collect())
    }

    fn claims(&self) -> Result<Vec<Claim>, StateError> {
        Ok(self.data.claims.clone())
    }

    fn shared_cycle_finished(&self, generation: u64) -> Result<bool, StateError> {
        Ok(self
            .data
            .shared
            .get(&generation)
            .is_some_and(|c| c.finished.is_some()))
    }
}
