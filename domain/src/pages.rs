//! Server-rendered pages for humans: the consent page and the dashboard.
//!
//! Invariants: every interpolated value goes through [`escape`]; pages carry no script at all;
//! the only style block carries a per-response nonce that the Content-Security-Policy from
//! [`content_security_policy`] allows; forms post only to our own origin.

use crate::account::ConsentView;
use crate::errors::ApiError;
use crate::time::format_rfc3339;

/// HTML-escapes text for element content and double-quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The CSP for a page whose style block has `nonce`. `form_targets` are the origins a form
/// submission may end at (redirects included, as browsers enforce `form-action` on them).
pub fn content_security_policy(nonce: &str, form_targets: &[&str]) -> String {
    let mut form_action = String::from("'self'");
    for t in form_targets {
        form_action.push(' ');
        form_action.push_str(t);
    }
    format!(
        "default-src 'none'; style-src 'nonce-{nonce}'; img-src 'none'; form-action {form_action}; \
         frame-ancestors 'none'; base-uri 'none'"
    )
}

const STYLE: &str = "body{font:16px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1a1d21}\
main{max-width:34rem;margin:2rem auto;padding:1.5rem;background:#fff;border-radius:12px;box-shadow:0 1px 3px rgba(0,0,0,.12)}\
h1{font-size:1.35rem;margin:0 0 1rem}dl{margin:1rem 0}dt{font-weight:600;margin-top:.6rem}dd{margin:0;word-break:break-all}\
ul{padding-left:1.2rem}form{margin:1rem 0}label{display:block;font-weight:600;margin-bottom:.3rem}\
input[type=email]{width:100%;box-sizing:border-box;padding:.6rem;font-size:1rem;border:1px solid #c4c9d0;border-radius:8px}\
button,a.button{display:inline-block;padding:.7rem 1.2rem;font-size:1rem;border-radius:8px;border:0;margin:.3rem .5rem .3rem 0;cursor:pointer;text-decoration:none}\
.primary{background:#635bff;color:#fff}.secondary{background:#e6e8eb;color:#1a1d21}.note{color:#5b6470;font-size:.9rem}\
.error{background:#fdecea;color:#8a1c12;padding:.6rem .8rem;border-radius:8px}\
.landing{outline:2px solid #635bff;outline-offset:4px;border-radius:4px}";

/// A complete page.
pub fn layout(title: &str, style_nonce: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<meta name=\"referrer\" content=\"no-referrer\"><title>{}</title>\
<style nonce=\"{}\">{STYLE}</style></head><body><main>{body}</main></body></html>",
        escape(title),
        escape(style_nonce)
    )
}

fn request_summary(v: &ConsentView) -> String {
    let scopes: String = v
        .scopes
        .iter()
        .map(|s| format!("<li><code>{}</code>: {}</li>", escape(s), scope_meaning(s)))
        .collect();
    let org = v
        .orchestrator
        .organisation
        .as_deref()
        .map(|o| format!(" (organisation <code>{}</code>)", escape(o)))
        .unwrap_or_default();
    format!(
        "<dl><dt>Who asks</dt><dd id=\"orchestrator\">{} account <code>{}</code>{org}</dd>\
<dt>For whom</dt><dd id=\"email\">{}</dd>\
<dt>What it may do</dt><dd><ul id=\"scopes\">{scopes}</ul></dd>\
<dt>Valid until</dt><dd>{}</dd></dl>",
        escape(&orchestrator_name(&v.orchestrator.kind)),
        escape(&v.orchestrator.account),
        escape(&v.email),
        escape(&format_rfc3339(v.expires_at)),
    )
}

fn orchestrator_name(kind: &str) -> String {
    match kind {
        "stripe" => "Stripe".to_string(),
        other => other.to_string(),
    }
}

fn scope_meaning(scope: &str) -> &'static str {
    match scope {
        "resources:read" => "see your plans, tokens and domains",
        "resources:write" => "create, change and remove plans, tokens and domains, including paid ones within your spending cap",
        _ => "",
    }
}

/// The ways an owner signs in, on every page that asks for it (consent page, dashboard).
pub struct SignIn<'a> {
    /// The operator's login URL with `return_to`, `nonce` and `login_hint` already added.
    pub login_url: Option<&'a str>,
    /// The development form (only when the environment is development).
    pub dev_form: Option<DevForm<'a>>,
    /// The page's single-use sign-in nonce (the development form sends it back).
    pub nonce: &'a str,
}

/// Where the development sign-in form posts and the hidden fields it carries besides `nonce`.
pub struct DevForm<'a> {
    pub action: &'a str,
    pub fields: Vec<(&'a str, &'a str)>,
}

/// The sign-in button (operator's login) and/or the development form.
pub fn sign_in_options(s: &SignIn) -> String {
    let mut body = String::new();
    if let Some(url) = s.login_url {
        body.push_str(&format!(
            "<p><a class=\"button primary\" id=\"operator-sign-in\" href=\"{}\">Sign in to continue</a></p>",
            escape(url)
        ));
    }
    if let Some(form) = &s.dev_form {
        let hidden: String = form
            .fields
            .iter()
            .map(|(k, v)| {
                format!(
                    "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                    escape(k),
                    escape(v)
                )
            })
            .collect();
        body.push_str(&format!(
            "<form id=\"dev-sign-in\" method=\"post\" action=\"{}\">\
<p class=\"note\">Development sign-in: this form exists only when ENVIRONMENT is development.</p>\
{hidden}<input type=\"hidden\" name=\"nonce\" value=\"{}\">\
<label for=\"email-input\">Owner email</label>\
<input type=\"email\" id=\"email-input\" name=\"email\" required autocomplete=\"email\">\
<p><button class=\"primary\" id=\"sign-in\" type=\"submit\">Sign in</button></p></form>",
            escape(form.action),
            escape(s.nonce)
        ));
    }
    if s.login_url.is_none() && s.dev_form.is_none() {
        body.push_str(
            "<p class=\"error\">Sign-in is not configured on this provider (OWNER_LOGIN_URL).</p>",
        );
    }
    body
}

/// Step 1: who asks, and sign in to prove you own the account.
pub struct SignInPage<'a> {
    pub view: &'a ConsentView,
    pub consent: &'a str,
    /// The operator's login URL with `return_to`, `nonce` and `login_hint` already added.
    pub login_url: Option<&'a str>,
    /// Show the development sign-in form (only when the environment is development).
    pub dev_form: bool,
    pub error: Option<&'a str>,
    pub style_nonce: &'a str,
}

pub fn sign_in_page(p: &SignInPage) -> String {
    let mut body = String::from("<h1>Link your account?</h1>");
    if let Some(e) = p.error {
        body.push_str(&format!(
            "<p class=\"error\" id=\"error\">{}</p>",
            escape(e)
        ));
    }
    body.push_str("<p>A tool wants to use your existing account. Sign in as its owner to review the request.</p>");
    body.push_str(&request_summary(p.view));
    body.push_str(&sign_in_options(&SignIn {
        login_url: p.login_url,
        dev_form: p.dev_form.then(|| DevForm {
            action: "/oauth/authorize",
            fields: vec![("action", "sign_in"), ("consent", p.consent)],
        }),
        nonce: &p.view.nonce,
    }));
    layout("Link your account?", p.style_nonce, &body)
}

/// Step 2: approve or deny.
pub fn approve_page(view: &ConsentView, consent: &str, csrf: &str, style_nonce: &str) -> String {
    let body = format!(
        "<h1>Approve access?</h1><p>You are signed in as <strong>{}</strong>.</p>{}\
<form id=\"decision\" method=\"post\" action=\"/oauth/authorize\">\
<input type=\"hidden\" name=\"action\" value=\"decide\">\
<input type=\"hidden\" name=\"consent\" value=\"{}\">\
<input type=\"hidden\" name=\"csrf\" value=\"{}\">\
<button class=\"primary\" id=\"approve\" type=\"submit\" name=\"decision\" value=\"approve\">Approve</button>\
<button class=\"secondary\" id=\"deny\" type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>\
<p class=\"note\">You can revoke this access later; approving shares no password.</p>",
        escape(&view.email),
        request_summary(view),
        escape(consent),
        escape(csrf)
    );
    layout("Approve access?", style_nonce, &body)
}

/// Who is looking at the dashboard: its session, and whether the owner signed in on it (else
/// how they can, to raise the cap or buy).
pub struct DashboardAuth<'a> {
    pub session: &'a str,
    pub signed_in: bool,
    pub sign_in: SignIn<'a>,
}

/// The owner's dashboard: plan, resources (no secrets), spend and cap, quotes to confirm.
pub fn dashboard_page(
    v: &crate::dashboard::View,
    auth: &DashboardAuth,
    notice: Option<&str>,
    style_nonce: &str,
) -> String {
    let session = auth.session;
    use crate::ledger::format_amount;
    let mut body = String::from("<h1>Your account</h1>");
    // Where the deep link pointed: named here, marked below, and the link's URL fragment
    // scrolls to it (no script needed).
    let landed = v.landing.as_ref().map(|l| l.anchor.as_str());
    let mark = |anchor: &str| {
        if landed == Some(anchor) {
            " class=\"landing\""
        } else {
            ""
        }
    };
    if let Some(l) = &v.landing {
        body.push_str(&format!(
            "<p class=\"note\" id=\"landing\" data-anchor=\"{}\">This link opens at <a href=\"#{}\">{}</a>.</p>",
            escape(&l.anchor),
            escape(&l.anchor),
            escape(&l.title)
        ));
        if let Some(note) = &l.note {
            body.push_str(&format!(
                "<p class=\"error\" id=\"landing-note\">{}</p>",
                escape(note)
            ));
        }
    }
    if let Some(n) = notice {
        body.push_str(&format!(
            "<p class=\"error\" id=\"notice\">{}</p>",
            escape(n)
        ));
    }
    body.push_str(&format!(
        "<section id=\"overview\"{}><dl><dt>Owner</dt><dd id=\"owner\">{}</dd><dt>Account</dt><dd><code>{}</code> ({})</dd>\
<dt>Plan</dt><dd id=\"plan\">{}</dd>\
<dt>Spent this month</dt><dd id=\"spend\">{} of {} cap</dd></dl></section>",
        mark("overview"),
        escape(&v.email),
        escape(&v.account_id),
        escape(&v.status),
        escape(v.plan.as_deref().unwrap_or("none")),
        format_amount(v.spent, &v.currency),
        format_amount(v.cap, &v.currency),
    ));
    if auth.signed_in {
        body.push_str(&format!(
            "<p class=\"note\" id=\"signed-in\">Signed in as the owner, {}.</p>",
            escape(&v.email)
        ));
    } else {
        body.push_str(
            "<section id=\"owner-sign-in\"><h2>Sign in to raise the cap or buy</h2>\
<p class=\"note\">This link lets you look and lower the cap. Raising the cap or buying needs the \
owner's sign-in.</p>",
        );
        body.push_str(&sign_in_options(&auth.sign_in));
        body.push_str("</section>");
    }
    body.push_str(&format!(
        "<section id=\"billing\"{}><h2>Spending cap</h2>\
<p class=\"note\">{} spent this month of a {} cap.</p>\
<form id=\"cap-form\" method=\"post\" action=\"/dashboard#billing\">\
<input type=\"hidden\" name=\"session\" value=\"{}\"><input type=\"hidden\" name=\"action\" value=\"set_cap\">\
<label for=\"cap\">Monthly spending cap (dollars)</label>\
<input type=\"number\" id=\"cap\" name=\"cap_dollars\" min=\"0\" max=\"10000\" step=\"1\" value=\"{}\" required>\
<p><button class=\"primary\" id=\"save-cap\" type=\"submit\">Save cap</button></p></form>{}</section>",
        mark("billing"),
        format_amount(v.spent, &v.currency),
        format_amount(v.cap, &v.currency),
        escape(session),
        v.cap / 100,
        usage_notes(v)
    ));
    for q in &v.quotes {
        body.push_str(&format!(
            "<h2>Domain quote, valid until {}</h2>",
            escape(&format_rfc3339(q.expires_at))
        ));
        for c in q.candidates.iter().filter(|c| c.available) {
            body.push_str(&format!(
                "<form class=\"quote\" method=\"post\" action=\"/dashboard\">\
<input type=\"hidden\" name=\"session\" value=\"{}\"><input type=\"hidden\" name=\"action\" value=\"confirm\">\
<input type=\"hidden\" name=\"resource_id\" value=\"{}\"><input type=\"hidden\" name=\"domain\" value=\"{}\">\
<input type=\"hidden\" name=\"amount\" value=\"{}\">\
<button class=\"primary\" type=\"submit\" data-domain=\"{}\">Buy {} for {}</button></form>",
                escape(session),
                escape(&q.resource_id),
                escape(&c.domain),
                c.amount,
                escape(&c.domain),
                escape(&c.domain),
                format_amount(c.amount, &c.currency)
            ));
        }
        body.push_str("<p class=\"note\">A one-time, non-refundable charge to the payment method your tool was given, within your cap.</p>");
    }
    body.push_str(&format!(
        "<h2>Resources</h2><ul id=\"resources\"{}>",
        mark("resources")
    ));
    for r in &v.resources {
        let anchor = format!("resource-{}", r.id);
        body.push_str(&format!(
            "<li id=\"{}\"{}><code>{}</code> {} ({}) {}</li>",
            escape(&anchor),
            mark(&anchor),
            escape(&r.id),
            escape(&r.service_id),
            escape(&r.status),
            escape(&r.detail)
        ));
    }
    body.push_str("</ul>");
    layout("Your account", style_nonce, &body)
}

/// Credits left, what the hard cap did to usage-based resources (which it paused), and usage
/// reported after the cap was reached (billed, since it happened).
fn usage_notes(v: &crate::dashboard::View) -> String {
    let mut out = String::new();
    if !v.credits.is_empty() {
        out.push_str("<div id=\"credits\">");
    }
    for c in &v.credits {
        out.push_str(&format!(
            "<p class=\"note\">Credits: {} left of {} ({}), until {}. Usage draws on them before your payment method; what they pay does not count against your cap.</p>",
            crate::ledger::format_amount(c.left, &v.currency),
            crate::ledger::format_amount(c.amount, &v.currency),
            escape(&c.reason),
            escape(&format_rfc3339(c.expires_at))
        ));
    }
    if !v.credits.is_empty() {
        out.push_str("</div>");
    }
    if !v.paused.is_empty() {
        let ids: Vec<String> = v.paused.iter().map(|id| escape(id)).collect();
        out.push_str(&format!(
            "<p class=\"error\" id=\"paused\">Paused by the spending cap: <code>{}</code>. Raise the cap to resume them now; they resume by themselves when the next month begins.</p>",
            ids.join("</code>, <code>")
        ));
    }
    if v.over_cap > 0 {
        out.push_str(&format!(
            "<p class=\"note\" id=\"over-cap\">{} of usage was reported after the cap was reached (while pausing); it is billed all the same.</p>",
            crate::ledger::format_amount(v.over_cap, &v.currency)
        ));
    }
    out
}

/// A page that only explains something (errors, expired links).
pub fn message_page(title: &str, text: &str, style_nonce: &str) -> String {
    let body = format!(
        "<h1 id=\"message-title\">{}</h1><p id=\"message\">{}</p>",
        escape(title),
        escape(text)
    );
    layout(title, style_nonce, &body)
}

/// What a page says when the client limit refuses a browser: `(status, title, text)`. Over the
/// limit is a 429 (the glue adds `retry-after`); a limit that could not be checked is a 503.
pub fn client_limit_page(refusal: &ApiError) -> (u16, &'static str, &'static str) {
    match refusal {
        ApiError::RateLimited { .. } => (
            429,
            "Too many attempts",
            "Wait a minute, then open the link again. Nothing was changed.",
        ),
        _ => (
            503,
            "Please try again",
            "We could not reach the account just now. Nothing was changed.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account_request::Orchestrator;

    fn view() -> ConsentView {
        ConsentView {
            account_id: "acct_x".into(),
            email: "dev@example.com".into(),
            orchestrator: Orchestrator {
                kind: "stripe".into(),
                organisation: Some("org_<b>".into()),
                account: "acct_\"1".into(),
            },
            scopes: vec!["resources:write".into()],
            expires_at: 1_800_000_000,
            nonce: "n<1>".into(),
            signed_in: false,
        }
    }

    #[test]
    fn escapes_everything_interpolated() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        let html = sign_in_page(&SignInPage {
            view: &view(),
            consent: "pvcs_\"><script>",
            login_url: Some("https://login.example.com/?a=1&b=2"),
            dev_form: true,
            error: Some("<bad>"),
            style_nonce: "abc",
        });
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<b>"));
        assert!(html.contains("org_&lt;b&gt;"));
        assert!(html.contains("a=1&amp;b=2"));
        assert!(html.contains("n&lt;1&gt;"));
        assert!(html.contains("id=\"dev-sign-in\""));
        assert!(html.contains("<style nonce=\"abc\">"));
    }

    #[test]
    fn no_script_and_a_viewport() {
        let html = approve_page(&view(), "pvcs_x", "csrf_y", "n");
        assert!(!html.to_lowercase().contains("<script"));
        assert!(html.contains("name=\"viewport\""));
        assert!(html.contains("id=\"approve\"") && html.contains("id=\"deny\""));
        assert!(html.contains("value=\"csrf_y\""));
    }

    #[test]
    fn dev_form_only_when_asked() {
        let html = sign_in_page(&SignInPage {
            view: &view(),
            consent: "c",
            login_url: Some("https://login"),
            dev_form: false,
            error: None,
            style_nonce: "n",
        });
        assert!(!html.contains("dev-sign-in"));
        assert!(html.contains("operator-sign-in"));
    }

    fn dashboard_view() -> crate::dashboard::View {
        crate::dashboard::View {
            account_id: "acct_x".into(),
            email: "dev@example.com".into(),
            status: "active".into(),
            plan: None,
            resources: vec![],
            spent: 0,
            cap: 10_000,
            currency: "usd".into(),
            quotes: vec![],
            landing: None,
            over_cap: 0,
            paused: vec![],
            credits: vec![],
        }
    }

    #[test]
    fn paused_resources_and_usage_over_the_cap_are_said_escaped() {
        let auth = DashboardAuth {
            session: "s",
            signed_in: true,
            sign_in: SignIn {
                login_url: None,
                dev_form: None,
                nonce: "n",
            },
        };
        let quiet = dashboard_page(&dashboard_view(), &auth, None, "n");
        assert!(!quiet.contains("id=\"paused\"") && !quiet.contains("id=\"over-cap\""));
        let v = crate::dashboard::View {
            over_cap: 250,
            paused: vec!["res_<1>".into()],
            ..dashboard_view()
        };
        let page = dashboard_page(&v, &auth, None, "n");
        assert!(
            page.contains("Paused by the spending cap: <code>res_&lt;1&gt;</code>"),
            "{page}"
        );
        assert!(page.contains("$2.50 of usage was reported after the cap was reached"));
        let v = crate::dashboard::View {
            credits: vec![crate::dashboard::CreditLine {
                amount: 10_000_000,
                left: 9_999_000,
                reason: "<startup>".into(),
                expires_at: 1_900_000_000,
            }],
            ..dashboard_view()
        };
        let page = dashboard_page(&v, &auth, None, "n");
        assert!(
            page.contains("Credits: $99990.00 left of $100000.00 (&lt;startup&gt;)"),
            "{page}"
        );
    }

    #[test]
    fn the_dashboard_offers_the_same_sign_in_until_signed_in() {
        let auth = |signed_in| DashboardAuth {
            session: "pvds_\"s",
            signed_in,
            sign_in: SignIn {
                login_url: Some("https://login/?return_to=x&nonce=n"),
                dev_form: Some(DevForm {
                    action: "/dashboard",
                    fields: vec![("action", "sign_in"), ("session", "pvds_\"s")],
                }),
                nonce: "n<1>",
            },
        };
        let html = dashboard_page(&dashboard_view(), &auth(false), None, "n");
        assert!(!html.to_lowercase().contains("<script"));
        assert!(html.contains("id=\"owner-sign-in\""), "{html}");
        assert!(html.contains("id=\"operator-sign-in\""));
        assert!(html.contains("action=\"/dashboard\""));
        assert!(html.contains("name=\"session\" value=\"pvds_&quot;s\""));
        assert!(html.contains("name=\"nonce\" value=\"n&lt;1&gt;\""));
        assert!(!html.contains("id=\"signed-in\""));
        let html = dashboard_page(&dashboard_view(), &auth(true), None, "n");
        assert!(html.contains("id=\"signed-in\""));
        assert!(!html.contains("dev-sign-in") && !html.contains("operator-sign-in"));
    }

    #[test]
    fn csp_is_strict() {
        let csp = content_security_policy("abc", &["https://projects.stripe.com"]);
        assert_eq!(
            csp,
            "default-src 'none'; style-src 'nonce-abc'; img-src 'none'; form-action 'self' https://projects.stripe.com; frame-ancestors 'none'; base-uri 'none'"
        );
    }

    #[test]
    fn the_client_limit_page_is_a_429_or_a_503() {
        let (status, title, _) = client_limit_page(&ApiError::RateLimited { retry_after: 60 });
        assert_eq!((status, title), (429, "Too many attempts"));
        let (status, title, text) = client_limit_page(&ApiError::Unavailable("limiter".into()));
        assert_eq!((status, title), (503, "Please try again"));
        assert!(text.contains("Nothing was changed"));
    }
}
