//! A realistic org, generated: sales reps with profiles and time zones, and for each rep
//! accounts, contacts, leads and events in Salesforce, and a mailbox with contacts in and out
//! of Salesforce_Sync and a calendar with customer meetings (attendees who are contacts and
//! leads, some arranged in the customer's time zone), all-day events, a recurring series,
//! private and past appointments. The same shape and seed give the same org; dates are
//! relative to `now`. `tether sandbox` seeds its org with it, the benchmark its data.

use super::exchange::RunningEmulator as Exchange;
use super::salesforce::{EmulatorHandle as Salesforce, soql::format_datetime};
use crate::exchange::model::{
    Attendee, CalendarEvent, Contact, FreeBusy, MailboxAddress, Pattern, RangeEnd, Recurrence,
    Sensitivity,
};
use crate::exchange::tz;
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashSet;

/// How big the org is. Per rep, records split by a fixed mix (see [`populate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    pub reps: usize,
    pub contacts_per_rep: usize,
    pub events_per_rep: usize,
    pub seed: u64,
}

/// What was generated, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub reps: usize,
    pub accounts: usize,
    pub leads: usize,
    /// Contacts in Salesforce (including those also in a rep's Salesforce_Sync folder).
    pub salesforce_contacts: usize,
    /// Contacts in both: the same person in Salesforce and in the rep's Salesforce_Sync.
    pub matched_contacts: usize,
    /// Contacts in Salesforce_Sync folders (including the matched ones).
    pub sync_folder_contacts: usize,
    /// Contacts in the reps' own Contacts folders: never synced.
    pub personal_contacts: usize,
    pub salesforce_events: usize,
    /// Calendar items, by kind.
    pub meetings: usize,
    pub all_day_events: usize,
    pub series: usize,
    pub private_events: usize,
    pub past_events: usize,
}

impl Summary {
    pub fn exchange_events(&self) -> usize {
        self.meetings + self.all_day_events + self.series + self.private_events + self.past_events
    }
}

/// A generated sales rep: a Salesforce user and a mailbox in the Sales department.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rep {
    pub email: String,
    pub name: String,
    pub profile: &'static str,
    /// IANA (Salesforce TimeZoneSidKey).
    pub time_zone: &'static str,
}

pub const SALES_USER: &str = "Sales User";
pub const SALES_MANAGER: &str = "Sales Manager";

/// The first reps are the demo's (Europe/Berlin); the rest rotate around the world.
const FIXED_REPS: &[(&str, &str)] = super::seed::REPS;
const ZONES: &[&str] = &[
    "America/New_York",
    "Europe/London",
    "America/Los_Angeles",
    "Asia/Tokyo",
    "Australia/Sydney",
    "America/Chicago",
    "Asia/Kolkata",
    "Europe/Paris",
];
const FIRST: &[&str] = &[
    "Aisha", "Bruno", "Carmen", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas",
    "Kavya", "Liam", "Maya", "Nils", "Olga", "Pedro", "Quinn", "Rosa", "Sven", "Tara", "Umar",
    "Vera", "Wei", "Ximena", "Yusuf", "Zoe",
];
const LAST: &[&str] = &[
    "Andersen",
    "Becker",
    "Chen",
    "Dubois",
    "Eriksen",
    "Fischer",
    "García",
    "Hoffmann",
    "Ito",
    "Jensen",
    "Kowalski",
    "Lopez",
    "Müller",
    "Nakamura",
    "O'Brien",
    "Petrov",
    "Rossi",
    "Singh",
    "Tanaka",
    "Urban",
    "Vogel",
    "Weber",
    "Yilmaz",
    "Zimmermann",
];
const COMPANIES: &[&str] = &[
    "Northwind",
    "Contoso",
    "Fabrikam",
    "Tailspin",
    "Litware",
    "Adatum",
    "Woodgrove",
    "Proseware",
    "Lucerne",
    "Wingtip",
    "Fourth Coffee",
    "Alpine Ski",
    "Coho Winery",
    "Margie's Travel",
    "Trey Research",
    "Blue Yonder",
    "Humongous",
    "Relecloud",
    "VanArsdel",
    "Southridge",
    "Consolidated Messenger",
    "Graphic Design Institute",
    "Wide World Importers",
    "School of Fine Art",
    "City Power",
    "Bellows College",
];
const SUFFIXES: &[&str] = &["GmbH", "Inc.", "Ltd", "SA", "AG", "LLC", "BV", "KK"];
const TITLES: &[&str] = &[
    "Head of Purchasing",
    "CFO",
    "IT Director",
    "Procurement Manager",
    "Operations Lead",
    "CTO",
    "Buyer",
    "VP Sales",
];
const CITIES: &[(&str, &str, &str)] = &[
    ("Berlin", "10115", "Germany"),
    ("Boston", "02108", "United States"),
    ("London", "EC1A 1BB", "United Kingdom"),
    ("Lyon", "69001", "France"),
    ("Osaka", "530-0001", "Japan"),
    ("Melbourne", "3000", "Australia"),
];
const MEETINGS: &[&str] = &[
    "Intro call",
    "Product demo",
    "Pricing review",
    "Quarterly business review",
    "Contract negotiation",
    "Onboarding kickoff",
];
const PERSONAL: &[&str] = &[
    "Dentist",
    "Parent-teacher meeting",
    "Physio",
    "Flat viewing",
];

/// Deterministic pseudo-random numbers (SplitMix64): same seed, same org, on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
}

/// The reps of an org of `reps` reps: the demo's two, then generated ones; every fifth is a
/// Sales Manager, the rest Sales Users.
pub fn reps(shape: &Shape) -> Vec<Rep> {
    let mut rng = Rng(shape.seed ^ 0x5EED_0001);
    let mut used = HashSet::new();
    (0..shape.reps)
        .map(|i| {
            let (email, name) = match FIXED_REPS.get(i) {
                Some((e, n)) => (e.to_string(), n.to_string()),
                None => {
                    let (first, last) = (rng.pick(FIRST), rng.pick(LAST));
                    let local = ascii_local(&format!("{first}.{last}"));
                    let email = if used.contains(&local) {
                        format!("{local}{i}@example.com")
                    } else {
                        format!("{local}@example.com")
                    };
                    (email, format!("{first} {last}"))
                }
            };
            used.insert(email.split('@').next().unwrap_or_default().to_string());
            Rep {
                email,
                name,
                profile: if i % 5 == 4 {
                    SALES_MANAGER
                } else {
                    SALES_USER
                },
                time_zone: if i < FIXED_REPS.len() {
                    "Europe/Berlin"
                } else {
                    ZONES[(i - FIXED_REPS.len()) % ZONES.len()]
                },
            }
        })
        .collect()
}

/// An email local part from a name: lower-case ASCII letters and dots.
fn ascii_local(name: &str) -> String {
    name.chars()
        .filter_map(|c| match c {
            'ü' => Some('u'),
            'í' => Some('i'),
            '\'' => None,
            c if c.is_ascii_alphanumeric() || c == '.' => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// A company's mail domain: its name in lower-case letters and digits, under `.example`.
fn mail_domain(company: &str) -> String {
    let name: String = ascii_local(company).chars().filter(|c| *c != '.').collect();
    format!("{name}.example")
}

/// Creates the reps (Salesforce users and Sales-department mailboxes); returns their
/// Salesforce user ids, in order.
pub fn add_reps(ews: &Exchange, sf: &Salesforce, reps: &[Rep]) -> Vec<String> {
    reps.iter()
        .map(|r| {
            ews.add_mailbox(&r.email, Some("Sales"));
            sf.add_user(&r.email, &r.email, &r.name, r.profile, r.time_zone)
        })
        .collect()
}

/// Fills the org: per rep, contacts by `i % 10` (0–3 Salesforce only, 4 in both, 5–8 in
/// Salesforce_Sync only, 9 a personal contact outside it), one lead per five contacts, one
/// account per ten, and events by `j % 10` (0–2 Salesforce events: a call, an all-day visit,
/// a private one; 3–4 meetings with a contact and a lead; 5 a meeting in the customer's time
/// zone; 6 an all-day trade fair; 7 a weekly series; 8 a private appointment; 9 last
/// month's meeting).
pub fn populate(
    ews: &Exchange,
    sf: &Salesforce,
    shape: &Shape,
    reps: &[Rep],
    rep_ids: &[String],
    now: DateTime<Utc>,
) -> Result<Summary, String> {
    let mut rng = Rng(shape.seed ^ 0xDA7A_0002);
    let mut summary = Summary {
        reps: reps.len(),
        ..Summary::default()
    };
    let mut emails = HashSet::new();
    let mut company_n = 0usize;
    for (r, rep) in reps.iter().enumerate() {
        let owner = &rep_ids[r];
        let mut folder = None;
        let zone: Tz = rep.time_zone.parse().unwrap_or(chrono_tz::UTC);
        let windows_zone = tz::iana_to_windows(rep.time_zone).unwrap_or("UTC");
        let contacts_folder = ews
            .folder_id(&rep.email, "contacts")
            .ok_or("seeding Exchange: no Contacts folder")?;
        // Accounts, each with its mail domain.
        let n_accounts = shape.contacts_per_rep.div_ceil(10).max(1);
        let mut accounts = Vec::new();
        for _ in 0..n_accounts {
            let root = COMPANIES[company_n % COMPANIES.len()];
            let round = company_n / COMPANIES.len();
            company_n += 1;
            let suffix = SUFFIXES[(company_n + round) % SUFFIXES.len()];
            let name = if round == 0 {
                format!("{root} {suffix}")
            } else {
                format!("{root} {} {suffix}", round + 1)
            };
            let domain = mail_domain(&name);
            let id = sf
                .insert("Account", json!({"Name": name, "OwnerId": owner}))
                .map_err(sf_err("an account"))?;
            summary.accounts += 1;
            accounts.push((id, name, domain));
        }
        let mut person = |rng: &mut Rng, k: usize| {
            let (first, last) = (rng.pick(FIRST), rng.pick(LAST));
            let (_, company, domain) = &accounts[k % accounts.len()];
            let base = ascii_local(&format!("{first}.{last}"));
            let mut email = format!("{base}@{domain}");
            let mut n = 2;
            while !emails.insert(email.clone()) {
                email = format!("{base}{n}@{domain}");
                n += 1;
            }
            (first, last, company.clone(), email, k % accounts.len())
        };
        // Leads: prospects not yet qualified, attendees of some meetings.
        let mut leads = Vec::new();
        for k in 0..shape.contacts_per_rep.div_ceil(5) {
            let (first, last, _, _, _) = person(&mut rng, k);
            let company = format!("{} Prospect {}", rng.pick(COMPANIES), r * 100 + k);
            let domain = mail_domain(&company);
            let email = format!("{}@{domain}", ascii_local(&format!("{first}.{last}")));
            sf.insert(
                "Lead",
                json!({"FirstName": first, "LastName": last, "Company": company, "Email": email,
                       "Status": "Open - Not Contacted", "OwnerId": owner}),
            )
            .map_err(sf_err("a lead"))?;
            summary.leads += 1;
            leads.push((format!("{first} {last}"), email));
        }
        // Contacts.
        let mut customers: Vec<(String, String, String)> = Vec::new(); // (id, name, email)
        for i in 0..shape.contacts_per_rep {
            let (first, last, company, email, a) = person(&mut rng, i);
            let title = rng.pick(TITLES);
            let (city, zip, country) = CITIES[rng.below(CITIES.len())];
            let phone = format!("+1 555 {:03} {:04}", r % 1000, i % 10_000);
            let kind = i % 10;
            if kind <= 4 {
                let id = sf
                    .insert(
                        "Contact",
                        json!({"FirstName": first, "LastName": last, "Email": email,
                               "Title": title, "Phone": phone, "AccountId": accounts[a].0,
                               "MailingCity": city, "MailingPostalCode": zip,
                               "MailingCountry": country, "OwnerId": owner}),
                    )
                    .map_err(sf_err("a contact"))?;
                summary.salesforce_contacts += 1;
                customers.push((id, format!("{first} {last}"), email.clone()));
            }
            if (4..=8).contains(&kind) {
                // In Outlook too: the same person (kind 4) as typed by the rep, without
                // the phone number; or a new one the rep met.
                let mut c = outlook_contact(first, last, &company, &email, title);
                if kind != 4 {
                    c.phones.insert("BusinessPhone".into(), phone.clone());
                }
                if folder.is_none() {
                    folder = Some(sync_folder(ews, &rep.email)?);
                }
                ews.put_contact(&rep.email, folder.as_deref().unwrap_or_default(), c)
                    .ok_or("seeding Exchange: cannot create a contact")?;
                summary.sync_folder_contacts += 1;
                summary.matched_contacts += usize::from(kind == 4);
            }
            if kind == 9 {
                let c = Contact {
                    given_name: Some(first.into()),
                    surname: Some(last.into()),
                    emails: [
                        Some(format!("{}@home.example", ascii_local(first))),
                        None,
                        None,
                    ],
                    ..Contact::default()
                };
                ews.put_contact(&rep.email, &contacts_folder, c)
                    .ok_or("seeding Exchange: cannot create a contact")?;
                summary.personal_contacts += 1;
            }
        }
        // Events, on working days in the rep's zone from tomorrow on.
        let today = now.with_timezone(&zone).date_naive();
        for j in 0..shape.events_per_rep {
            let day = working_day(today, 1 + (j * 3 + r) % 40);
            let hour = 9 + (j % 8) as u32;
            let start = local(zone, day, hour, if j % 2 == 0 { 0 } else { 30 });
            let minutes = [30, 60, 45, 90][j % 4];
            let customer = customers.get(j % customers.len().max(1));
            let lead = leads.get(j % leads.len().max(1));
            let company_of = |email: &str| {
                accounts
                    .iter()
                    .find(|(_, _, d)| email.ends_with(d.as_str()))
                    .map(|(_, n, _)| n.clone())
                    .unwrap_or_else(|| "a prospect".into())
            };
            match j % 10 {
                kind @ 0..=2 => {
                    let mut ev = json!({"OwnerId": owner, "Location": "Phone"});
                    if let Some((id, name, _)) = customer {
                        ev["WhoId"] = json!(id);
                        ev["Subject"] = json!(format!("Call: {name}"));
                    } else {
                        ev["Subject"] = json!("Call");
                    }
                    if kind == 1 {
                        ev["Subject"] = json!(format!(
                            "Site visit, {}",
                            company_of(customer.map_or("", |c| c.2.as_str()))
                        ));
                        ev["IsAllDayEvent"] = json!(true);
                        ev["ActivityDate"] = json!(day.format("%Y-%m-%d").to_string());
                    } else {
                        ev["StartDateTime"] = json!(format_datetime(start));
                        ev["EndDateTime"] =
                            json!(format_datetime(start + Duration::minutes(minutes)));
                        ev["IsPrivate"] = json!(kind == 2);
                    }
                    sf.insert("Event", ev).map_err(sf_err("an event"))?;
                    summary.salesforce_events += 1;
                }
                3..=5 => {
                    let mut ev = CalendarEvent::new(start, start + Duration::minutes(minutes));
                    ev.start_time_zone = Some(windows_zone.into());
                    ev.end_time_zone = Some(windows_zone.into());
                    if let Some((_, name, email)) = customer {
                        ev.subject = Some(format!(
                            "{} with {}",
                            MEETINGS[j % MEETINGS.len()],
                            company_of(email)
                        ));
                        ev.required_attendees.push(attendee(name, email));
                    } else {
                        ev.subject = Some(MEETINGS[j % MEETINGS.len()].into());
                    }
                    if j % 10 == 4
                        && let Some((name, email)) = lead
                    {
                        ev.optional_attendees.push(attendee(name, email));
                    }
                    if j % 10 == 5 {
                        // Arranged in the customer's zone: 10:00 there.
                        let (other, other_windows) = if rep.time_zone.starts_with("America/") {
                            (chrono_tz::Europe::Berlin, "W. Europe Standard Time")
                        } else {
                            (chrono_tz::America::New_York, "Eastern Standard Time")
                        };
                        let s = local(other, day, 10, 0);
                        ev.start = s;
                        ev.end = s + Duration::minutes(minutes);
                        ev.start_time_zone = Some(other_windows.into());
                        ev.end_time_zone = Some(other_windows.into());
                    }
                    ev.location = Some(["Microsoft Teams", "Customer site", "Zoom"][j % 3].into());
                    ev.free_busy = Some(FreeBusy::Busy);
                    ews.put_event(&rep.email, ev)
                        .ok_or("seeding Exchange: cannot create an event")?;
                    summary.meetings += 1;
                }
                6 => {
                    let mut ev = CalendarEvent::all_day(day, day + Duration::days(2), windows_zone)
                        .ok_or("seeding Exchange: no such time zone")?;
                    ev.subject = Some(format!("Trade fair, {}", CITIES[j % CITIES.len()].0));
                    ev.free_busy = Some(FreeBusy::OOF);
                    ews.put_event(&rep.email, ev)
                        .ok_or("seeding Exchange: cannot create an event")?;
                    summary.all_day_events += 1;
                }
                7 => {
                    let monday = working_day(today, 1 + j % 5);
                    let monday =
                        monday - Duration::days(i64::from(monday.weekday().num_days_from_monday()));
                    let monday = if monday <= today {
                        monday + Duration::days(7)
                    } else {
                        monday
                    };
                    let s = local(zone, monday, 9, 0);
                    let mut ev = CalendarEvent::new(s, s + Duration::minutes(45));
                    ev.subject = Some("Weekly pipeline review".into());
                    ev.start_time_zone = Some(windows_zone.into());
                    ev.end_time_zone = Some(windows_zone.into());
                    ev.recurrence = Some(Recurrence {
                        pattern: Pattern::Weekly {
                            interval: 1,
                            days: vec![Weekday::Mon],
                            first_day: None,
                        },
                        start: monday,
                        end: RangeEnd::Count(12),
                    });
                    ews.put_event(&rep.email, ev)
                        .ok_or("seeding Exchange: cannot create an event")?;
                    summary.series += 1;
                }
                8 => {
                    let mut ev = CalendarEvent::new(start, start + Duration::minutes(60));
                    ev.subject = Some(PERSONAL[j % PERSONAL.len()].into());
                    ev.sensitivity = Some(Sensitivity::Private);
                    ev.start_time_zone = Some(windows_zone.into());
                    ev.end_time_zone = Some(windows_zone.into());
                    ews.put_event(&rep.email, ev)
                        .ok_or("seeding Exchange: cannot create an event")?;
                    summary.private_events += 1;
                }
                _ => {
                    let past = local(zone, today - Duration::days(7 + (j % 20) as i64), 14, 0);
                    let mut ev = CalendarEvent::new(past, past + Duration::minutes(60));
                    ev.subject = Some("Debrief (last month)".into());
                    ev.start_time_zone = Some(windows_zone.into());
                    ev.end_time_zone = Some(windows_zone.into());
                    ews.put_event(&rep.email, ev)
                        .ok_or("seeding Exchange: cannot create an event")?;
                    summary.past_events += 1;
                }
            }
        }
    }
    Ok(summary)
}

/// The rep's Salesforce_Sync folder under Contacts, created as the rep would in Outlook.
pub fn sync_folder(ews: &Exchange, rep: &str) -> Result<String, String> {
    if let Some(id) = ews.find_folder(rep, "Salesforce_Sync") {
        return Ok(id);
    }
    let contacts = ews
        .folder_id(rep, "contacts")
        .ok_or_else(|| format!("seeding Exchange: {rep} has no Contacts folder"))?;
    ews.create_folder(rep, &contacts, "Salesforce_Sync", "IPF.Contact")
        .ok_or_else(|| format!("seeding Exchange: cannot create Salesforce_Sync for {rep}"))
}

fn sf_err(what: &'static str) -> impl Fn(super::salesforce::RecordError) -> String {
    move |e| format!("seeding Salesforce with {what}: {}", e.message)
}

fn outlook_contact(first: &str, last: &str, company: &str, email: &str, title: &str) -> Contact {
    Contact {
        given_name: Some(first.into()),
        surname: Some(last.into()),
        company_name: Some(company.into()),
        job_title: Some(title.into()),
        emails: [Some(email.into()), None, None],
        ..Contact::default()
    }
}

fn attendee(name: &str, email: &str) -> Attendee {
    Attendee {
        mailbox: MailboxAddress {
            name: Some(name.into()),
            email: email.into(),
        },
        response: None,
    }
}

/// The `n`th working day after `from`.
fn working_day(from: NaiveDate, n: usize) -> NaiveDate {
    let mut d = from;
    let mut left = n;
    while left > 0 {
        d += Duration::days(1);
        if d.weekday().num_days_from_monday() < 5 {
            left -= 1;
        }
    }
    d
}

/// A local wall-clock time in `zone` as an instant (the earlier one across a DST change).
fn local(zone: Tz, day: NaiveDate, hour: u32, minute: u32) -> DateTime<Utc> {
    let naive = day.and_hms_opt(hour, minute, 0).unwrap_or_default();
    zone.from_local_datetime(&naive)
        .earliest()
        .unwrap_or_else(|| Utc.from_utc_datetime(&naive).with_timezone(&zone))
        .with_timezone(&Utc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed;

    fn shape(seed: u64) -> Shape {
        Shape {
            reps: 6,
            contacts_per_rep: 10,
            events_per_rep: 10,
            seed,
        }
    }

    /// Emails of everyone in the org, sorted: what makes two orgs the same people.
    async fn people(shape: &Shape) -> (Summary, Vec<String>) {
        let mut org = seed::start_empty(0, 0).await.unwrap();
        let reps = reps(shape);
        org.rep_ids = add_reps(&org.exchange, org.salesforce.handle(), &reps);
        let now = DateTime::parse_from_rfc3339("2026-03-02T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let summary = populate(
            &org.exchange,
            org.salesforce.handle(),
            shape,
            &reps,
            &org.rep_ids,
            now,
        )
        .unwrap();
        let mut emails: Vec<String> = ["Contact", "Lead", "User"]
            .iter()
            .flat_map(|o| org.salesforce.handle().records(o))
            .filter_map(|r| r.get("Email")?.as_str().map(str::to_string))
            .collect();
        emails.sort();
        (summary, emails)
    }

    #[test]
    fn reps_have_profiles_zones_and_unique_addresses() {
        let reps = reps(&Shape {
            reps: 40,
            ..shape(3)
        });
        assert_eq!(reps[0].email, "celia.kung@example.com");
        assert_eq!(reps[4].profile, SALES_MANAGER);
        assert_eq!(reps[5].profile, SALES_USER);
        let emails: HashSet<&str> = reps.iter().map(|r| r.email.as_str()).collect();
        assert_eq!(emails.len(), 40);
        let zones: HashSet<&str> = reps.iter().map(|r| r.time_zone).collect();
        assert!(zones.len() >= 8, "{zones:?}");
        for r in &reps {
            assert!(
                tz::iana_to_windows(r.time_zone).is_some(),
                "{}",
                r.time_zone
            );
        }
    }

    #[tokio::test]
    async fn the_same_seed_gives_the_same_org_and_every_kind_of_record() {
        let (summary, first) = people(&shape(7)).await;
        let (again, second) = people(&shape(7)).await;
        assert_eq!(summary, again);
        assert_eq!(first, second);
        let (_, other) = people(&shape(8)).await;
        assert_ne!(first, other);
        assert_eq!(summary.reps, 6);
        assert_eq!(summary.salesforce_contacts, 6 * 5);
        assert_eq!(summary.matched_contacts, 6);
        assert_eq!(summary.sync_folder_contacts, 6 * 5);
        assert_eq!(summary.personal_contacts, 6);
        assert_eq!(summary.leads, 6 * 2);
        assert_eq!(summary.salesforce_events, 6 * 3);
        for n in [
            summary.all_day_events,
            summary.series,
            summary.private_events,
            summary.past_events,
        ] {
            assert_eq!(n, 6);
        }
        assert_eq!(summary.meetings, 6 * 3);
        for email in &first {
            let (local, domain) = email.split_once('@').unwrap();
            assert!(
                !local.is_empty()
                    && !domain.contains("..")
                    && !domain.starts_with('.')
                    && !domain.ends_with('.'),
                "{email}"
            );
        }
    }
}
