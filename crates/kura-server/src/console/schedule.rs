//! The rotation schedule builder, shared by a secret's rotation editor and the create
//! wizards: every N hours, days or months, or a `rate()`/`cron()` expression, a window, and
//! a "Preview" button that shows the next five rotations (kura-core's schedule code, the one
//! the scheduler runs).

use kura_core::model::SecretRecord;
use kura_core::schedule::{RotationRules as CoreRules, Schedule};
use maud::{Markup, html};

use super::{Ctx, Params, layout};
use crate::service::types::RotationRules;

/// How many rotations a preview shows.
const PREVIEW: usize = 5;
const UNITS: [&str; 3] = ["hours", "days", "months"];

/// The builder's fields, as a form sent them or as a secret has them.
#[derive(Debug, Clone, Default)]
pub(crate) struct ScheduleForm {
    /// A rotation function's name.
    pub function: String,
    pub every: String,
    pub unit: String,
    pub expression: String,
    pub duration: String,
    pub immediately: bool,
}

impl ScheduleForm {
    pub(crate) fn of_secret(s: &SecretRecord) -> Self {
        let r = &s.rotation;
        ScheduleForm {
            function: r
                .function_arn
                .as_deref()
                .map(|a| a.rsplit(':').next().unwrap_or(a).to_string())
                .unwrap_or_default(),
            every: r.after_days.map(|d| d.to_string()).unwrap_or_default(),
            unit: "days".into(),
            expression: r.schedule_expression.clone().unwrap_or_default(),
            duration: r.duration.clone().unwrap_or_default(),
            immediately: true,
        }
    }

    pub(crate) fn of_form(f: &Params) -> Self {
        ScheduleForm {
            function: f.get("function").trim().to_string(),
            every: f.get("every").trim().to_string(),
            unit: f.get("unit").to_string(),
            expression: f.get("expression").trim().to_string(),
            duration: f.get("duration").trim().to_string(),
            immediately: f.get("immediately") == "on",
        }
    }

    /// RotationRules for RotateSecret: every N days is AutomaticallyAfterDays, other units
    /// a `rate()` expression. Checked as RotateSecret checks them.
    pub(crate) fn rules(&self) -> Result<RotationRules, String> {
        let expression = match (self.every.is_empty(), self.expression.is_empty()) {
            (false, false) | (true, true) => {
                return Err(
                    "Give either a number of hours, days or months, or a schedule expression: not both and not neither."
                        .into(),
                );
            }
            (true, false) => Some(self.expression.clone()),
            (false, true) => None,
        };
        let mut after_days = None;
        let expression = match expression {
            Some(e) => Some(e),
            None => {
                let n: i64 = self.every.parse().map_err(|_| {
                    format!("\"{}\" is not a whole number of {}.", self.every, self.unit)
                })?;
                match self.unit.as_str() {
                    "days" => {
                        after_days = Some(n);
                        None
                    }
                    "hours" | "months" => Some(format!("rate({n} {})", self.unit)),
                    other => return Err(format!("{other:?} is not hours, days or months.")),
                }
            }
        };
        let rules = RotationRules {
            automatically_after_days: after_days,
            duration: Some(self.duration.clone()).filter(|d| !d.is_empty()),
            schedule_expression: expression,
        };
        self.schedule_of(&rules)?;
        Ok(rules)
    }

    fn schedule_of(&self, r: &RotationRules) -> Result<Schedule, String> {
        let core = CoreRules {
            automatically_after_days: r.automatically_after_days,
            schedule_expression: r.schedule_expression.clone(),
            duration: r.duration.clone(),
        };
        match Schedule::from_rules(&core) {
            Ok(Some(s)) => Ok(s),
            Ok(None) => Err("Give a schedule.".into()),
            Err(e) => Err(e.message),
        }
    }

    /// The next rotations from now, or why there are none.
    pub(crate) fn preview(&self, ctx: &Ctx) -> Result<Vec<kura_core::schedule::Window>, String> {
        let rules = self.rules()?;
        let schedule = self.schedule_of(&rules)?;
        let windows = schedule.upcoming(ctx.now(), PREVIEW);
        if windows.is_empty() {
            return Err("This schedule never fires again: its years are over.".into());
        }
        Ok(windows)
    }

    /// The schedule in words, for a review page.
    pub(crate) fn describe(&self) -> String {
        let mut s = if self.expression.is_empty() {
            format!("every {} {}", self.every, self.unit)
        } else {
            self.expression.clone()
        };
        if !self.duration.is_empty() {
            s.push_str(&format!(", within {}", self.duration));
        }
        s
    }
}

/// The schedule's fields (not the function), with a Preview button that posts the form
/// back with `step=preview`; `preview` is what that showed.
pub(crate) fn fields(
    sf: &ScheduleForm,
    preview: Option<&Result<Vec<kura_core::schedule::Window>, String>>,
) -> Markup {
    let unit = if UNITS.contains(&sf.unit.as_str()) {
        sf.unit.as_str()
    } else {
        "days"
    };
    html! {
        div.row {
            div.field {
                label for="every" { "Every" }
                input #every type="number" name="every" min="1" max="1000" value=(sf.every) aria-describedby="schedule-hint";
            }
            div.field {
                label for="unit" { "Unit" }
                select #unit name="unit" {
                    @for u in UNITS { option value=(u) selected[u == unit] { (u) } }
                }
            }
        }
        div.field {
            label for="expression" { "Or a schedule expression" }
            input #expression name="expression" value=(sf.expression) placeholder="rate(12 hours) or cron(0 4 ? * MON *)" spellcheck="false" autocapitalize="off" aria-describedby="schedule-hint";
            small #schedule-hint { "Give one: every N hours, days or months, or rate(N hours|days|months), or cron(minutes hours day-of-month month day-of-week year) in UTC." }
        }
        div.field {
            label for="duration" { "Window (optional)" }
            input #duration name="duration" value=(sf.duration) placeholder="4h" spellcheck="false" aria-describedby="duration-hint";
            small #duration-hint { "How long after each start a rotation may run, e.g. 4h; by default the rest of the UTC day (an hour for hourly schedules)." }
        }
        div.actions {
            button type="submit" name="step" value="preview" formnovalidate { "Preview dates" }
        }
        @if let Some(p) = preview {
            div #preview role="status" {
                @match p {
                    Ok(windows) => {
                        p { "The next " (windows.len()) " rotations, if set now:" }
                        ol.dates { @for w in windows { li { (layout::time(w.start)) " – " (layout::time(w.end)) } } }
                    }
                    Err(why) => div.flash.error { (why) },
                }
            }
        }
        div.field.check {
            input #immediately type="checkbox" name="immediately" checked[sf.immediately];
            label for="immediately" { "Rotate immediately after saving" }
        }
    }
}
