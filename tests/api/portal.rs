//! The portal over plain HTTP: accounts from invitations, sign-in and its
//! limits, sessions and CSRF, one-time links, password reset by e-mail
//! through a real SMTP server, and tenants kept apart. (The flows in a real
//! browser are in tests/browser/portal.)

use crate::helpers::*;
use mitra::startup::Roles;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A person's browser: a cookie jar, no redirects followed.
pub struct Person {
    pub client: reqwest::Client,
    base: String,
}

impl Person {
    pub fn new(app: &TestApp) -> Self {
        Self::at(&app.address, "en")
    }

    pub fn at(base: &str, lang: &str) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::ACCEPT_LANGUAGE,
            reqwest::header::HeaderValue::from_str(lang).unwrap(),
        );
        Person {
            client: client_builder()
                .cookie_store(true)
                .default_headers(headers)
                .build()
                .unwrap(),
            base: base.to_owned(),
        }
    }

    /// Links mitra issues are on MITRA_PUBLIC_URL (in tests, the listen
    /// address with port 0): their path, on this app.
    fn url(&self, path: &str) -> String {
        match url::Url::parse(path) {
            Ok(u) => format!("{}{}", self.base, u.path()),
            Err(_) => format!("{}{path}", self.base),
        }
    }

    /// GET a page: its status and text.
    pub async fn get(&self, path: &str) -> (StatusCode, String) {
        let res = self.client.get(self.url(path)).send().await.unwrap();
        (res.status(), res.text().await.unwrap())
    }

    /// GET a page that must answer 200; its text.
    pub async fn page(&self, path: &str) -> String {
        let (status, text) = self.get(path).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {text}");
        text
    }

    /// POSTs a form with the CSRF token of `page` added; the response.
    pub async fn post(&self, path: &str, page: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        let token = csrf(page);
        form.push(("csrf", &token));
        self.client
            .post(self.url(path))
            .form(&form)
            .send()
            .await
            .unwrap()
    }
}

/// The CSRF token in a page's forms.
pub fn csrf(page: &str) -> String {
    let start = page
        .find(r#"name="csrf" value=""#)
        .unwrap_or_else(|| panic!("no CSRF field in the page: {page}"))
        + r#"name="csrf" value=""#.len();
    page[start..start + 44].to_owned()
}

pub fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// A program user with a password, signed in: the program and the person.
pub async fn merchant(app: &TestApp) -> (Value, Person) {
    let program = app.create_program().await;
    let person = program_owner(app, &program, "owner@shop.example").await;
    (program, person)
}

/// Opens an invitation link and chooses a password: signed in after.
pub async fn set_password(person: &Person, url: &str) {
    let page = person.page(url).await;
    let res = person
        .post(
            url,
            &page,
            &[
                ("password", "a long enough secret"),
                ("password2", "a long enough secret"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/portal?notice=password-set");
}

/// A user of `program` with a password, signed in.
pub async fn program_owner(app: &TestApp, program: &Value, email: &str) -> Person {
    let path = format!("/v1/programs/{}/users", s(&program["id"]));
    let res = app
        .post(&path, s(&program["api_key"]), &json!({"email": email}))
        .await;
    let invited = assert_status(res, StatusCode::CREATED).await;
    let person = Person::new(app);
    set_password(&person, s(&invited["invite_url"])).await;
    person
}

/// A partner with a portal account, signed in.
pub async fn partner_person(app: &TestApp, name: &str) -> (Value, Person) {
    let partner = app.create_partner(name).await;
    let email = format!("{}+portal@example.com", name.to_lowercase());
    let person = portal_account(app, &partner, &email, "en").await;
    (partner, person)
}

/// A portal account of this partner's, invited by the admin, signed in
/// and reading `lang`.
pub async fn portal_account(app: &TestApp, partner: &Value, email: &str, lang: &str) -> Person {
    let path = format!("/v1/partners/{}/users", s(&partner["id"]));
    let res = app
        .post(&path, &app.admin_token, &json!({"email": email}))
        .await;
    let invited = assert_status(res, StatusCode::CREATED).await;
    let person = Person::at(&app.address, lang);
    set_password(&person, s(&invited["invite_url"])).await;
    person
}

#[tokio::test]
async fn an_invited_merchant_chooses_a_password_and_lands_on_the_overview() {
    let app = spawn_app().await;
    let (_, person) = merchant(&app).await;

    let (status, _) = person.get("/portal").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let overview = person.page("/portal/merchant").await;
    assert!(overview.contains("Batik Shop"), "{overview}");
    assert!(overview.contains("owner@shop.example"));

    // Without the session cookie, the same page sends to the sign-in page.
    let anonymous = Person::new(&app);
    let (status, page) = anonymous.get("/portal/merchant").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
}

#[tokio::test]
async fn an_invitation_link_works_once_and_a_taken_address_is_refused() {
    let app = spawn_app().await;
    let program = app.create_program().await;
    let path = format!("/v1/programs/{}/users", s(&program["id"]));
    let res = app
        .post(
            &path,
            &app.admin_token,
            &json!({"email": "Owner@Shop.example"}),
        )
        .await;
    let invited = assert_status(res, StatusCode::CREATED).await;
    assert!(s(&invited["id"]).starts_with("usr_"));
    let url = s(&invited["invite_url"]).to_owned();
    let public = app.settings.public_base();
    assert!(
        url.starts_with(&format!("{public}/portal/welcome/")),
        "{url}"
    );

    let person = Person::new(&app);
    set_password(&person, &url).await;
    let again = Person::new(&app);
    let (status, page) = again.get(&url).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains("This link no longer works"), "{page}");

    // The address has an account now, whatever its case.
    let res = app
        .post(
            &path,
            &app.admin_token,
            &json!({"email": "owner@shop.EXAMPLE"}),
        )
        .await;
    assert_problem(res, StatusCode::CONFLICT).await;
    let partner = app.create_partner("Ayu").await;
    let res = app
        .post(
            &format!("/v1/partners/{}/users", s(&partner["id"])),
            &app.admin_token,
            &json!({"email": "owner@shop.example"}),
        )
        .await;
    assert_problem(res, StatusCode::CONFLICT).await;
    // Another program's key may not invite into this program.
    let other = app.create_program().await;
    let res = app
        .post(
            &path,
            s(&other["api_key"]),
            &json!({"email": "x@shop.example"}),
        )
        .await;
    assert_problem(res, StatusCode::NOT_FOUND).await;
    let res = app
        .post(&path, s(&program["api_key"]), &json!({"email": "nope"}))
        .await;
    assert_eq!(
        invalid_fields(&assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["email"]
    );
}

#[tokio::test]
async fn sign_in_takes_the_right_password_and_limits_attempts_per_account() {
    let app = spawn_app().await;
    let _ = merchant(&app).await;
    let person = Person::new(&app);
    let page = person.page("/portal/login").await;
    assert!(page.contains(r#"name="email""#) && page.contains(r#"name="password""#));

    let res = person
        .post(
            "/portal/login",
            &page,
            &[
                ("email", "owner@shop.example"),
                ("password", "wrong password!"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Wrong e-mail or password.")
    );
    let res = person
        .post(
            "/portal/login",
            &page,
            &[
                ("email", "OWNER@shop.example"),
                ("password", "a long enough secret"),
                ("next", "/portal/merchant/payouts"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/portal/merchant/payouts");
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("mitra_session="))
        .expect("a session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Secure"), "{cookie}");

    // Three more attempts reach the limit of five a minute; the sixth is refused
    // even with the right password.
    let guesser = Person::new(&app);
    let page = guesser.page("/portal/login").await;
    for _ in 0..3 {
        let res = guesser
            .post(
                "/portal/login",
                &page,
                &[
                    ("email", "owner@shop.example"),
                    ("password", "guess guess guess"),
                ],
            )
            .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let res = guesser
        .post(
            "/portal/login",
            &page,
            &[
                ("email", "owner@shop.example"),
                ("password", "a long enough secret"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    // Another account from the same address is not held back by it.
    let res = guesser
        .post(
            "/portal/login",
            &page,
            &[
                ("email", "someone@else.example"),
                ("password", "whatever it is"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

/// A wrong guess at `owner@shop.example`'s password, or the right one.
async fn sign_in(person: &Person, page: &str, password: &str) -> StatusCode {
    let fields = [("email", "owner@shop.example"), ("password", password)];
    person.post("/portal/login", page, &fields).await.status()
}

#[tokio::test]
async fn sign_in_attempts_spread_over_two_api_processes_count_together() {
    let app = spawn_app().await;
    let _ = merchant(&app).await;
    // A second API process: the same Postgres, the same Redis and prefix.
    let other = start(app.settings.clone(), app.database.clone(), Roles::API).await;
    let (here, there) = (Person::new(&app), Person::at(&other.address, "en"));
    let (page_here, page_there) = (
        here.page("/portal/login").await,
        there.page("/portal/login").await,
    );
    for i in 0..5 {
        let (person, page) = match i % 2 {
            0 => (&here, &page_here),
            _ => (&there, &page_there),
        };
        assert_eq!(
            sign_in(person, page, "guess guess guess").await,
            StatusCode::UNAUTHORIZED
        );
    }
    // Three guesses reached one process and two the other: five in all.
    for (person, page) in [(&there, &page_there), (&here, &page_here)] {
        assert_eq!(
            sign_in(person, page, "a long enough secret").await,
            StatusCode::TOO_MANY_REQUESTS
        );
    }
}

#[tokio::test]
async fn sign_in_works_and_is_still_limited_while_redis_is_down() {
    let app = spawn_app_with(Roles::API, &[("REDIS_URL", "redis://127.0.0.1:1")]).await;
    let _ = merchant(&app).await;
    let person = Person::new(&app);
    let page = person.page("/portal/login").await;
    assert_eq!(
        sign_in(&person, &page, "a long enough secret").await,
        StatusCode::SEE_OTHER
    );
    let guesser = Person::new(&app);
    let page = guesser.page("/portal/login").await;
    for _ in 0..4 {
        assert_eq!(
            sign_in(&guesser, &page, "guess guess guess").await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        sign_in(&guesser, &page, "a long enough secret").await,
        StatusCode::TOO_MANY_REQUESTS,
        "this process counts on its own while Redis is away"
    );
    let metrics = reqwest::get(app.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metric(&metrics, r#"mitra_backend_errors_total{backend="redis"}"#) >= 6.0);
}

#[tokio::test]
async fn forms_without_their_csrf_token_are_refused_and_pages_carry_a_strict_policy() {
    let app = spawn_app().await;
    let (_, person) = merchant(&app).await;
    let res = person
        .client
        .post(app.url("/portal/merchant/payouts"))
        .form(&[("min", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = person
        .client
        .post(app.url("/portal/merchant/payouts"))
        .form(&[("min", "1"), ("csrf", &"x".repeat(44))])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    let res = person
        .client
        .get(app.url("/portal/merchant"))
        .send()
        .await
        .unwrap();
    let csp = res.headers()["content-security-policy"].to_str().unwrap();
    assert_eq!(csp, mitra::portal::CONTENT_SECURITY_POLICY);
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(res.headers()["x-frame-options"], "DENY");
    assert_eq!(res.headers()["referrer-policy"], "no-referrer");
    let page = res.text().await.unwrap();
    assert!(
        !page.contains("<script>") && !page.contains(" style=\""),
        "inline script or style"
    );

    // Signing out ends the session on the server, not just in the browser.
    let res = person.post("/portal/logout", &page, &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (status, _) = person.get("/portal/merchant").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn cookies_are_secure_when_the_public_url_is_https() {
    let app = spawn_app_with(
        Roles::API,
        &[("MITRA_PUBLIC_URL", "https://go.shop.example")],
    )
    .await;
    let person = Person::new(&app);
    let res = person
        .client
        .get(app.url("/portal/login"))
        .send()
        .await
        .unwrap();
    let cookie = res.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("mitra_csrf="), "{cookie}");
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
}

#[tokio::test]
async fn a_partners_session_never_reaches_another_tenants_pages() {
    let app = spawn_app().await;
    let (ayu, ayu_person) = partner_person(&app, "Ayu").await;
    let (budi, budi_person) = partner_person(&app, "Budi").await;
    let program = app.create_program().await;
    let a = app
        .create_agreement(&program, &[(&ayu, 10000)], json!({}))
        .await;
    let b = app
        .create_agreement(&program, &[(&budi, 10000)], json!({}))
        .await;
    let ayu_link = app.create_link(&a, json!({})).await;
    let _ = b;

    let path = format!("/portal/partner/links/{}", s(&ayu_link["id"]));
    let page = ayu_person.page(&path).await;
    assert!(page.contains(s(&ayu_link["code"])));
    assert!(page.contains("<svg"), "a QR code");
    for (who, path) in [
        (&budi_person, path.as_str()),
        (&budi_person, "/portal/merchant"),
        (&budi_person, "/portal/merchant/payouts"),
        (&ayu_person, "/portal/merchant/partners"),
        (&ayu_person, "/portal/partner/links/lnk_zzzz"),
    ] {
        let (status, page) = who.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {page}");
    }
    // A merchant's session reaches no partner page either.
    let (_, owner) = merchant(&app).await;
    let (status, _) = owner.get("/portal/partner").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Nor does a partner answer another partner's invitation.
    let other = app.create_program().await;
    let res = app
        .post(
            &format!("/v1/programs/{}/enrollments", s(&other["id"])),
            &app.admin_token,
            &json!({"partner_id": ayu["id"]}),
        )
        .await;
    let invitation = assert_status(res, StatusCode::CREATED).await;
    let page = budi_person.page("/portal/partner/programs").await;
    let res = budi_person
        .post(
            &format!(
                "/portal/partner/enrollments/{}/accept",
                s(&invitation["id"])
            ),
            &page,
            &[],
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let page = ayu_person.page("/portal/partner/programs").await;
    assert!(page.contains(s(&invitation["id"])));
}

#[tokio::test]
async fn a_sign_in_link_works_once_within_a_minute_for_the_programs_own_partners() {
    let app = spawn_app().await;
    let program = app.create_program().await;
    let ayu = app.create_partner("Ayu").await;
    let path = format!("/v1/partners/{}/login-links", s(&ayu["id"]));
    // Not a member yet: the program may not sign it in.
    let res = app
        .request(
            reqwest::Method::POST,
            &path,
            Some(s(&program["api_key"])),
            None,
        )
        .await;
    assert_problem(res, StatusCode::NOT_FOUND).await;
    app.enroll(&program, &ayu).await;
    let res = app
        .request(
            reqwest::Method::POST,
            &path,
            Some(s(&program["api_key"])),
            None,
        )
        .await;
    let link = assert_status(res, StatusCode::CREATED).await;
    let expires = chrono::DateTime::parse_from_rfc3339(s(&link["expires_at"])).unwrap();
    let left = expires
        .signed_duration_since(chrono::Utc::now())
        .num_seconds();
    assert!((55..=60).contains(&left), "{left} s");

    let person = Person::new(&app);
    let (status, _) = person.get(s(&link["url"])).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let dashboard = person.page("/portal/partner").await;
    assert!(dashboard.contains("ayu@example.com"), "{dashboard}");
    let (status, _) = Person::new(&app).get(s(&link["url"])).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "used once");

    // A link past its minute does not sign anyone in.
    let res = app
        .request(reqwest::Method::POST, &path, Some(&app.admin_token), None)
        .await;
    let late = assert_status(res, StatusCode::CREATED).await;
    sqlx::query(
        "update user_tokens set expires_at = now() - interval '1 second' where used_at is null",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let (status, _) = Person::new(&app).get(s(&late["url"])).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A tiny SMTP server: accepts every message and hands it to the test.
async fn smtp_sink() -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 sink ESMTP\r\n").await.unwrap();
                let mut data: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(body) = data.as_mut() {
                        if line == "." {
                            tx.send(std::mem::take(body)).unwrap();
                            data = None;
                            write.write_all(b"250 queued\r\n").await.unwrap();
                        } else {
                            body.push_str(&line);
                            body.push('\n');
                        }
                        continue;
                    }
                    let verb = line.split_whitespace().next().unwrap_or("").to_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 sink\r\n",
                        "DATA" => {
                            data = Some(String::new());
                            b"354 go ahead\r\n"
                        }
                        "QUIT" => {
                            write.write_all(b"221 bye\r\n").await.unwrap();
                            break;
                        }
                        _ => b"250 ok\r\n",
                    };
                    write.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (port, rx)
}

#[tokio::test]
async fn a_forgotten_password_is_reset_through_a_link_sent_over_smtp() {
    let (port, mut inbox) = smtp_sink().await;
    let smtp = format!("smtp://127.0.0.1:{port}");
    let app = spawn_app_with(Roles::API, &[("MITRA_SMTP_URL", &smtp)]).await;
    let (_, _owner) = merchant(&app).await;
    let person = Person::at(&app.address, "id-ID,id;q=0.9");
    let page = person.page("/portal/password-reset").await;
    assert!(page.contains("Atur ulang kata sandi"), "Indonesian: {page}");
    let res = person
        .post(
            "/portal/password-reset",
            &page,
            &[("email", "owner@shop.example")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let mail = tokio::time::timeout(std::time::Duration::from_secs(10), inbox.recv())
        .await
        .expect("an e-mail within 10 s")
        .unwrap();
    assert!(mail.contains("owner@shop.example"), "{mail}");
    // The body is quoted-printable: long lines end in a soft break.
    let mail = mail.replace("=\n", "");
    let start = mail
        .find(&format!(
            "{}/portal/password-reset/",
            app.settings.public_base()
        ))
        .expect("the link");
    let url: String = mail[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    // Nobody else got anything: an unknown address is answered the same, silently.
    let res = person
        .post(
            "/portal/password-reset",
            &page,
            &[("email", "nobody@shop.example")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);

    let form = person.page(&url).await;
    let res = person
        .post(
            &url,
            &form,
            &[
                ("password", "a brand new secret"),
                ("password2", "a brand new secret"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let login = Person::new(&app);
    let page = login.page("/portal/login").await;
    let res = login
        .post(
            "/portal/login",
            &page,
            &[
                ("email", "owner@shop.example"),
                ("password", "a long enough secret"),
            ],
        )
        .await;
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "the old password is gone"
    );
    let res = login
        .post(
            "/portal/login",
            &page,
            &[
                ("email", "owner@shop.example"),
                ("password", "a brand new secret"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(300), inbox.recv())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn without_smtp_the_admin_hands_out_the_reset_link() {
    let app = spawn_app().await;
    let (_, _owner) = merchant(&app).await;
    let person = Person::new(&app);
    let page = person.page("/portal/password-reset").await;
    assert!(page.contains("does not send e-mail"), "{page}");
    let program = app.create_program().await;
    let res = app
        .post(
            "/v1/password-resets",
            s(&program["api_key"]),
            &json!({"email": "owner@shop.example"}),
        )
        .await;
    assert_problem(res, StatusCode::FORBIDDEN).await;
    let res = app
        .post(
            "/v1/password-resets",
            &app.admin_token,
            &json!({"email": "nobody@shop.example"}),
        )
        .await;
    assert_problem(res, StatusCode::NOT_FOUND).await;
    let res = app
        .post(
            "/v1/password-resets",
            &app.admin_token,
            &json!({"email": "owner@shop.example"}),
        )
        .await;
    let reset = assert_status(res, StatusCode::CREATED).await;
    let url = s(&reset["url"]);
    assert!(url.starts_with(&format!(
        "{}/portal/password-reset/",
        app.settings.public_base()
    )));
    let form = person.page(url).await;
    assert!(form.contains("owner@shop.example"));
}

#[tokio::test]
async fn a_program_invites_by_email_and_the_newcomer_signs_up_and_accepts() {
    let app = spawn_app().await;
    let (program, owner) = merchant(&app).await;
    let page = owner.page("/portal/merchant/partners").await;
    let res = owner
        .post(
            "/portal/merchant/partners/invite",
            &page,
            &[
                ("email", "sari@example.id"),
                ("note", "Welcome <b>Sari</b>"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let page = res.text().await.unwrap();
    let start = page
        .find(&format!(
            "{}/portal/invitations/",
            app.settings.public_base()
        ))
        .unwrap();
    let url: String = page[start..].chars().take_while(|c| *c != '"').collect();

    let sari = Person::at(&app.address, "id");
    let invitation = sari.page(&url).await;
    assert!(
        invitation.contains("Undangan dari Batik Shop"),
        "{invitation}"
    );
    assert!(
        invitation.contains("Welcome &#60;b&#62;Sari&#60;/b&#62;"),
        "escaped: {invitation}"
    );
    let signup = format!("{url}/signup");
    let res = sari
        .post(
            &signup,
            &invitation,
            &[
                ("name", "Sari Style"),
                ("password", "short"),
                ("password2", "short"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = sari
        .post(
            &signup,
            &invitation,
            &[
                ("name", "Sari Style"),
                ("password", "a long enough secret"),
                ("password2", "a long enough secret"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let invitation = sari.page(&url).await;
    let res = sari
        .post(
            &format!("{url}/answer"),
            &invitation,
            &[("answer", "accept")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&res),
        "/portal/partner/programs?notice=invitation-accepted"
    );
    let programs = sari
        .page("/portal/partner/programs?notice=invitation-accepted")
        .await;
    assert!(programs.contains("Undangan diterima"), "{programs}");

    // The program sees its new member, by the name it chose.
    let res = app
        .get(
            &format!(
                "/v1/programs/{}/enrollments?status=active",
                s(&program["id"])
            ),
            &app.admin_token,
        )
        .await;
    let list = assert_status(res, StatusCode::OK).await;
    assert_eq!(list["data"][0]["partner_name"], "Sari Style");
    assert_eq!(list["data"][0]["email"], "sari@example.id");
}

#[tokio::test]
async fn the_demo_prints_portal_sign_ins_that_work() {
    let (_db, url) = fresh_database().await;
    let env = vec![
        ("DATABASE_URL", url.to_string()),
        ("REDIS_URL", std::env::var("REDIS_URL").unwrap()),
        (
            "MITRA_ADMIN_TOKEN",
            "demo-admin-token-for-a-test".to_owned(),
        ),
        (
            "MITRA_LINK_KEYS",
            format!("1:{}", mitra::domain::random_token()),
        ),
        (
            "MITRA_REDIS_PREFIX",
            format!("test:demo:{}:", std::process::id()),
        ),
    ];
    let demo = ServerProcess::start(&["demo"], &env);
    let mut logins = Vec::new();
    for _ in 0..200 {
        logins = demo
            .logs
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| {
                let l = l.trim();
                let (who, rest) = l.split_once(':')?;
                let mut words = rest.split_whitespace();
                let (email, label, password) = (words.next()?, words.next()?, words.next()?);
                (["merchant", "partner"].contains(&who) && label == "password")
                    .then(|| (who.to_owned(), email.to_owned(), password.to_owned()))
            })
            .collect::<Vec<_>>();
        if logins.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(logins.len(), 2, "{:?}", demo.logs.lock().unwrap());
    for (who, email, password) in logins {
        let person = Person::at(&demo.base, "en");
        let page = person.page("/portal/login").await;
        let res = person
            .post(
                "/portal/login",
                &page,
                &[("email", &email), ("password", &password)],
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{who}");
        let home = if who == "merchant" {
            "/portal/merchant"
        } else {
            "/portal/partner"
        };
        let page = person.page(home).await;
        assert!(page.contains(&email), "{who}: {page}");
    }
}

#[tokio::test]
async fn the_language_switch_outranks_the_browser_and_never_redirects_elsewhere() {
    let app = spawn_app().await;
    let person = Person::new(&app);
    let (_, page) = person.get("/portal/login").await;
    assert!(page.contains("<html lang=\"en\">") && page.contains(">Sign in<"));
    let res = person
        .client
        .get(app.url("/portal/lang/id?next=/portal/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/portal/login");
    let page = person.page("/portal/login").await;
    assert!(
        page.contains("<html lang=\"id\">") && page.contains(">Masuk<"),
        "{page}"
    );
    for next in [
        "//evil.example/portal",
        "https://evil.example/",
        "/v1/programs",
    ] {
        let url = format!(
            "/portal/lang/en?next={}",
            url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
        );
        let res = person.client.get(app.url(&url)).send().await.unwrap();
        assert_eq!(location(&res), "/portal", "{next}");
    }
    let (status, _) = person.get("/portal/lang/fr").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn what_would_i_earn_prices_an_order_in_the_partners_own_programs_only() {
    let app = spawn_app().await;
    let (ayu, ayu_person) = partner_person(&app, "Ayu").await;
    let (budi, budi_person) = partner_person(&app, "Budi").await;
    let program = app
        .create_program_with(json!({"commission": {
            "sale": {"percent_bps": 1000, "categories": {"books": {"percent_bps": 2000}}},
            "lead": {"flat_minor": 200}
        }}))
        .await;
    let other = app.create_program_with(json!({"name": "Kopi Shop"})).await;
    app.create_agreement(&program, &[(&ayu, 10000)], json!({}))
        .await;
    app.create_agreement(&other, &[(&budi, 10000)], json!({}))
        .await;
    let pid = s(&program["id"]);
    let oid = s(&other["id"]);

    // The page is linked from the navigation and from each active program.
    let programs = ayu_person.page("/portal/partner/programs").await;
    assert!(
        programs.contains(&format!(r#"href="/portal/partner/simulate?program={pid}""#)),
        "{programs}"
    );
    let form = ayu_person.page("/portal/partner/simulate").await;
    assert!(form.contains(r#"href="/portal/partner/simulate" aria-current="page""#));
    assert!(
        form.contains(&format!(
            r#"<option value="{pid}" selected>Batik Shop (EUR)"#
        )),
        "{form}"
    );
    assert!(!form.contains("Kopi Shop"));
    assert!(
        form.contains(r#"<option value="books">"#),
        "the rule's categories are offered"
    );
    assert!(!form.contains("data-answer"));

    // €100 at the default 10% and €25 of books at 20%: €15.00, and why.
    let path = format!(
        "/portal/partner/simulate?program={pid}&event=sale&amount=125.00&cat1=books&amt1=25&cat2=&amt2=&cat3=&amt3="
    );
    let page = ayu_person.page(&path).await;
    assert!(page.contains("<strong data-earn>€15.00</strong>"), "{page}");
    assert!(
        page.contains("category “books”: 20% of €25.00 = €5.00"),
        "{page}"
    );
    assert!(
        page.contains("other products: 10% of €100.00 = €10.00"),
        "{page}"
    );
    assert!(
        page.contains("program terms v1 · your agreement v1"),
        "{page}"
    );
    assert!(
        page.contains("the program&#39;s rule") || page.contains("the program&#x27;s rule"),
        "{page}"
    );
    // Nothing was booked.
    let res = app
        .get(
            &format!("/v1/partners/{}/commissions", s(&ayu["id"])),
            &app.admin_token,
        )
        .await;
    let list = assert_status(res, StatusCode::OK).await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(0), "{list}");

    // A lead earns the flat rate; a renewal, under a rule without
    // `recurring`, earns nothing, and says why.
    let page = ayu_person
        .page(&format!(
            "/portal/partner/simulate?program={pid}&event=lead&amount=0"
        ))
        .await;
    assert!(page.contains("<strong data-earn>€2.00</strong>"), "{page}");
    let page = ayu_person
        .page(&format!(
            "/portal/partner/simulate?program={pid}&amount=50&renewal=1"
        ))
        .await;
    assert!(page.contains("<strong data-earn>€0.00</strong>"), "{page}");
    assert!(page.contains("first payment only"), "{page}");

    // An amount that is no number, or lines beyond the order: said in words.
    let (status, page) = ayu_person
        .get(&format!(
            "/portal/partner/simulate?program={pid}&amount=lots"
        ))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("Give the order amount as a number"), "{page}");
    let (status, page) = ayu_person
        .get(&format!(
            "/portal/partner/simulate?program={pid}&amount=10&cat1=books&amt1=20"
        ))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("are more than the order amount"), "{page}");

    // Another partner's program, a program only invited to, a made-up id:
    // no such page. A merchant has no such page either.
    let invited = app
        .create_program_with(json!({"name": "Invited Shop"}))
        .await;
    let res = app
        .post(
            &format!("/v1/programs/{}/enrollments", s(&invited["id"])),
            &app.admin_token,
            &json!({"partner_id": ayu["id"]}),
        )
        .await;
    assert_status(res, StatusCode::CREATED).await;
    let (_, owner) = merchant(&app).await;
    for (who, path) in [
        (
            &ayu_person,
            format!("/portal/partner/simulate?program={oid}&amount=100"),
        ),
        (
            &ayu_person,
            format!("/portal/partner/simulate?program={oid}"),
        ),
        (
            &ayu_person,
            format!(
                "/portal/partner/simulate?program={}&amount=1",
                s(&invited["id"])
            ),
        ),
        (
            &ayu_person,
            "/portal/partner/simulate?program=prg_zzzz".to_owned(),
        ),
        (
            &ayu_person,
            "/portal/partner/simulate?program=nonsense".to_owned(),
        ),
        (
            &budi_person,
            format!("/portal/partner/simulate?program={pid}&amount=100"),
        ),
        (
            &owner,
            format!("/portal/partner/simulate?program={pid}&amount=100"),
        ),
    ] {
        let (status, page) = who.get(&path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {page}");
    }
    // Budi prices its own program.
    let page = budi_person
        .page(&format!("/portal/partner/simulate?program={oid}&amount=80"))
        .await;
    assert!(page.contains("<strong data-earn>€8.00</strong>"), "{page}");
}

#[tokio::test]
async fn a_partner_downloads_each_programs_signed_statement_from_the_portal_and_it_verifies() {
    // Arrange: a booked sale, chained, for a partner with a portal account.
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    let click = app.click_id_ago(&f.link, chrono::Duration::minutes(1));
    assert_status(
        app.post_conversion(&f.program, &sale("P-1", 10_000, &click))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.attribute().await;
    crate::statements::chain_all(&app).await;
    let ayu = portal_account(&app, &f.partner, "ayu+portal@example.com", "en").await;

    // Act: the statement page, and the file its link downloads.
    let page = ayu.page("/portal/partner/statement").await;
    let href = format!(
        "/portal/partner/programs/{}/signed-statement",
        s(&f.program["id"])
    );
    let res = ayu.client.get(ayu.url(&href)).send().await.unwrap();

    // Assert: the page shows the program's published key and the link; the
    // file is an attachment holding the API's statement, and it verifies.
    let key = crate::statements::public_key(&app, &f.program, s(&f.partner["api_key"])).await;
    assert!(page.contains("Verifiable statements"), "{page}");
    assert!(page.contains(&key), "{page}");
    assert!(page.contains(&format!("href=\"{href}\"")), "{page}");
    assert_eq!(res.status(), StatusCode::OK);
    let disposition = res.headers()["content-disposition"].to_str().unwrap();
    assert_eq!(
        disposition,
        format!(
            "attachment; filename=\"statement-{}-{}-1.json\"",
            s(&f.program["id"]),
            s(&f.partner["id"])
        )
    );
    let file: Value = res.json().await.unwrap();
    let api = crate::statements::statement(&app, &f.program, &f.partner, 0).await;
    assert_eq!(file["entries"], api["entries"]);
    assert_eq!(file["head"], api["head"]);
    assert_eq!(file["entries"][0]["amount_minor"], 1_000);
    let (code, out) = crate::statements::verify(&key, &file, None);
    assert_eq!(code, 0, "{out}");

    // Another partner sees no such program and cannot fetch its statement.
    let (_, budi) = partner_person(&app, "Budi").await;
    let (status, _) = budi.get(&href).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let page = budi.page("/portal/partner/statement").await;
    assert!(!page.contains(&key), "{page}");
    assert!(
        page.contains("No program has a statement for you yet"),
        "{page}"
    );
    // And in Bahasa Indonesia the section speaks it.
    let indo = portal_account(&app, &f.partner, "ayu+id@example.com", "id").await;
    let page = indo.page("/portal/partner/statement").await;
    assert!(page.contains("Laporan yang dapat diverifikasi"), "{page}");
}

/// An app whose fixture partner earned on a sale of €100.00 per order.
async fn with_sales(orders: &[&str]) -> (TestApp, Fixture) {
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    let click = app.click_id_ago(&f.link, chrono::Duration::minutes(1));
    for order in orders {
        assert_status(
            app.post_conversion(&f.program, &sale(order, 10_000, &click))
                .await,
            StatusCode::ACCEPTED,
        )
        .await;
    }
    app.attribute().await;
    (app, f)
}

#[tokio::test]
async fn why_a_commission_changed_reads_in_the_partners_language_with_its_amounts_in_money() {
    // Arrange: two booked sales; a quarter of the first refunded, the
    // second approved early by the program, saying nothing.
    let (app, f) = with_sales(&["R-1", "R-2"]).await;
    let refund =
        json!({"order_id": "R-1", "event": "refund", "amount_minor": 2_500, "currency": "EUR"});
    assert_status(
        app.post_conversion(&f.program, &refund).await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.attribute().await;
    let early = app.order(&f.program, "R-2").await;
    let path = format!("/v1/commissions/{}/approve", early.of(&f.partner).id);
    assert_status(
        app.post(&path, s(&f.program["api_key"]), &json!({})).await,
        StatusCode::OK,
    )
    .await;
    // What the API keeps and shows is unchanged.
    let reasons: Vec<String> = sqlx::query_scalar(
        "select reason from ledger_entries where reason is not null order by id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert!(
        reasons.contains(&"refund of 2500 (2500 of 10000 refunded so far)".to_owned()),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&"approved early".to_owned()),
        "{reasons:?}"
    );

    // Act: the commissions page, in English and in Bahasa Indonesia.
    let ayu = portal_account(&app, &f.partner, "ayu+why@example.com", "en").await;
    let en = ayu.page("/portal/partner/commissions").await;
    let indo = portal_account(&app, &f.partner, "ayu+mengapa@example.com", "id").await;
    let id = indo.page("/portal/partner/commissions").await;

    // Assert: each reason in words, its amounts in the program's money.
    assert!(
        en.contains("a refund of €25.00 (€25.00 of €100.00 refunded so far)"),
        "{en}"
    );
    assert!(en.contains("approved early by the program"), "{en}");
    assert!(!en.contains("2500 of 10000"), "{en}");
    assert!(id.contains("pengembalian dana €25"), "{id}");
    assert!(id.contains("disetujui lebih awal oleh program"), "{id}");
    assert!(!id.contains("refunded so far"), "{id}");
    assert!(!id.contains("approved early"), "{id}");
}

#[tokio::test]
async fn a_partner_claims_an_untracked_sale_in_the_portal_and_reads_the_programs_answer() {
    // Arrange: a partner in a program, with a portal account.
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    let agreement = s(&f.agreement["id"]).to_owned();
    let ayu = portal_account(&app, &f.partner, "ayu+claims@example.com", "en").await;
    let claims_of_program = || async {
        let path = format!("/v1/programs/{}/claims", s(&f.program["id"]));
        assert_status(
            app.get(&path, s(&f.program["api_key"])).await,
            StatusCode::OK,
        )
        .await["data"]
            .as_array()
            .unwrap()
            .clone()
    };

    // Act 1: a claim dated ahead and without an amount.
    let page = ayu.page("/portal/partner/claims").await;
    assert!(page.contains(&agreement), "{page}");
    assert!(page.contains("You have opened no claims."), "{page}");
    let ahead = (chrono::Utc::now() + chrono::Duration::days(2))
        .date_naive()
        .to_string();
    let res = ayu
        .post(
            "/portal/partner/claims",
            &page,
            &[
                ("agreement_id", &agreement),
                ("order_id", "ORD-9"),
                ("date", &ahead),
                ("amount", ""),
                ("expected", "99999999999"),
            ],
        )
        .await;

    // Assert 1: refused in words, the fields kept, nothing stored.
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let refused = res.text().await.unwrap();
    assert!(
        refused.contains("Date of the sale: a day from 400 days ago to today"),
        "{refused}"
    );
    assert!(
        refused.contains("Amount of the sale: give an amount such as 125.50"),
        "{refused}"
    );
    assert!(
        refused.contains("Commission you expect: give an amount such as 125.50"),
        "{refused}"
    );
    assert!(refused.contains(r#"value="ORD-9""#), "{refused}");
    // An order id too long for any shop, on the Indonesian page.
    let indo = portal_account(&app, &f.partner, "ayu+id@example.com", "id").await;
    let page_id = indo.page("/portal/partner/claims").await;
    let long = "x".repeat(129);
    let res = indo
        .post(
            "/portal/partner/claims",
            &page_id,
            &[
                ("agreement_id", &agreement),
                ("order_id", &long),
                ("date", &ahead),
                ("amount", "10"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let refused = res.text().await.unwrap();
    assert!(
        refused.contains("ID pesanan: gunakan 1 sampai 128 karakter, tanpa karakter kontrol"),
        "{refused}"
    );
    assert!(claims_of_program().await.is_empty());

    // Act 2: the claim as it should be.
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1))
        .date_naive()
        .to_string();
    let res = ayu
        .post(
            "/portal/partner/claims",
            &page,
            &[
                ("agreement_id", &agreement),
                ("order_id", "ORD-9"),
                ("date", &yesterday),
                ("amount", "125.50"),
                ("expected", "12.55"),
                ("note", "sent from my newsletter"),
            ],
        )
        .await;

    // Assert 2: opened for the program, as the API would have opened it.
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/portal/partner/claims?notice=claim-opened");
    let listed = claims_of_program().await;
    assert_eq!(listed.len(), 1);
    let claim = &listed[0];
    assert_eq!(claim["kind"], "untracked");
    assert_eq!(claim["status"], "open");
    assert_eq!(claim["order_id"], "ORD-9");
    assert_eq!(claim["amount_minor"], 12_550);
    assert_eq!(claim["expected_commission_minor"], 1_255);
    assert_eq!(claim["agreement_id"], f.agreement["id"]);
    assert_eq!(claim["partner_id"], f.partner["id"]);
    let page = ayu.page("/portal/partner/claims?notice=claim-opened").await;
    assert!(page.contains("Your claim is open"), "{page}");
    assert!(page.contains(r#"data-status="open""#), "{page}");
    assert!(page.contains("€125.50"), "{page}");

    // The program declines it through the API; the partner reads why.
    let path = format!("/v1/claims/{}/decline", s(&claim["id"]));
    let body = json!({"reason_code": "order_cancelled", "note": "returned on day 3"});
    assert_status(
        app.post(&path, s(&f.program["api_key"]), &body).await,
        StatusCode::OK,
    )
    .await;
    let page = ayu.page("/portal/partner/claims").await;
    assert!(page.contains(r#"data-status="declined""#), "{page}");
    assert!(
        page.contains("Order cancelled or returned: returned on day 3"),
        "{page}"
    );

    // Another partner cannot claim under Ayu's agreement.
    let (_, budi) = partner_person(&app, "Budi").await;
    let page = budi.page("/portal/partner/claims").await;
    assert!(!page.contains(&agreement), "{page}");
    let res = budi
        .post(
            "/portal/partner/claims",
            &page,
            &[
                ("agreement_id", &agreement),
                ("order_id", "ORD-10"),
                ("date", &yesterday),
                ("amount", "10"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(claims_of_program().await.len(), 1);
}

/// Opens an untracked claim through the partner's claims page.
async fn claim_in_portal(person: &Person, agreement: &str, order: &str, amount: &str) {
    let page = person.page("/portal/partner/claims").await;
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1))
        .date_naive()
        .to_string();
    let res = person
        .post(
            "/portal/partner/claims",
            &page,
            &[
                ("agreement_id", agreement),
                ("order_id", order),
                ("date", &yesterday),
                ("amount", amount),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "{order}");
}

#[tokio::test]
async fn a_program_accepts_and_declines_claims_in_the_portal_and_the_partner_reads_the_answers() {
    // Arrange: two untracked claims from Ayu, and the program's owner signed in.
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    let ayu = portal_account(&app, &f.partner, "ayu+claims@example.com", "en").await;
    claim_in_portal(&ayu, s(&f.agreement["id"]), "ORD-1", "125.50").await;
    claim_in_portal(&ayu, s(&f.agreement["id"]), "ORD-2", "10").await;
    let owner = program_owner(&app, &f.program, "claims@shop.example").await;
    let queue = owner.page("/portal/merchant/claims").await;
    assert_eq!(queue.matches("data-open-claim=").count(), 2, "{queue}");
    assert!(queue.contains("ORD-1") && queue.contains("Ayu"), "{queue}");
    let id_of = |order: &str| {
        let at = queue.find(order).unwrap();
        let start = queue[..at].rfind("data-open-claim=\"").unwrap() + "data-open-claim=\"".len();
        queue[start..start + queue[start..].find('"').unwrap()].to_owned()
    };
    let (first, second) = (id_of("ORD-1"), id_of("ORD-2"));

    // Act: a decline without a reason, then with one; an accept of 100.00.
    let path = format!("/portal/merchant/claims/{second}/decline");
    let res = owner.post(&path, &queue, &[("note", "why?")]).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Choose a reason to decline.")
    );
    let res = owner
        .post(
            &path,
            &queue,
            &[
                ("reason_code", "other_source"),
                ("note", "a coupon site had it"),
            ],
        )
        .await;
    assert_eq!(
        location(&res),
        "/portal/merchant/claims?notice=claim-declined"
    );
    let path = format!("/portal/merchant/claims/{first}/accept");
    let res = owner.post(&path, &queue, &[("amount", "100")]).await;
    assert_eq!(
        location(&res),
        "/portal/merchant/claims?notice=claim-accepted"
    );

    // Assert: the sale is booked from the claim at the amount accepted ...
    let sale = app.conversion(&f.program, "ORD-1").await;
    assert_eq!(sale["status"], "attributed");
    assert_eq!(sale["attributed_via"], "claim");
    assert_eq!(sale["amount_minor"], 10_000);
    assert_eq!(sale["commissions"][0]["amount_minor"], 1_000);
    // ... the queue is empty, both decided, and Ayu reads both answers.
    let queue = owner.page("/portal/merchant/claims").await;
    assert!(queue.contains("data-claims-empty"), "{queue}");
    assert_eq!(queue.matches("data-claim=").count(), 2, "{queue}");
    let page = ayu.page("/portal/partner/claims").await;
    assert!(page.contains(r#"data-status="accepted""#), "{page}");
    assert!(
        page.contains("Credited to another source: a coupon site had it"),
        "{page}"
    );
    // Another program's owner reaches neither the claim nor its decision.
    let (_, stranger) = merchant(&app).await;
    let page = stranger.page("/portal/merchant/claims").await;
    assert!(!page.contains("ORD-1"), "{page}");
    let res = stranger
        .post(
            &format!("/portal/merchant/claims/{second}/accept"),
            &page,
            &[],
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_partner_disputes_commissions_in_the_portal_and_both_sides_write_in_the_thread() {
    // Arrange: Ayu's commission of €10.00 on D-1, and one on D-2 the program
    // rejected; Ayu and the program's owner signed in.
    let (app, f) = with_sales(&["D-1", "D-2"]).await;
    let first = app.order(&f.program, "D-1").await.of(&f.partner).id.clone();
    let second = app.order(&f.program, "D-2").await.of(&f.partner).id.clone();
    assert_status(
        app.post(
            &format!("/v1/commissions/{second}/reject"),
            s(&f.program["api_key"]),
            &json!({"reason": "coupon site"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let ayu = portal_account(&app, &f.partner, "ayu+dispute@example.com", "en").await;
    let owner = program_owner(&app, &f.program, "disputes@shop.example").await;
    let claims_count = || async {
        sqlx::query_scalar::<_, i64>("select count(*) from claims")
            .fetch_one(&app.db)
            .await
            .unwrap()
    };

    // Act and assert: each commission offers a dispute; the wrong amount
    // is claimed through a form that refuses it without the amount expected.
    let list = ayu.page("/portal/partner/commissions").await;
    let dispute = format!("/portal/partner/commissions/{first}/claim");
    assert!(list.contains(&format!("href=\"{dispute}\"")), "{list}");
    let form = ayu.page(&dispute).await;
    assert!(form.contains("Think the amount is wrong?"), "{form}");
    let res = ayu
        .post(&dispute, &form, &[("note", "two items, both mine")])
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let refused = res.text().await.unwrap();
    assert!(
        refused.contains("give an amount such as 125.50"),
        "{refused}"
    );
    assert!(refused.contains("two items, both mine"), "{refused}");
    assert_eq!(claims_count().await, 0);
    let res = ayu
        .post(
            &dispute,
            &form,
            &[("expected", "12.50"), ("note", "two items, both mine")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let thread = location(&res);
    assert!(
        thread.starts_with("/portal/partner/claims/") && thread.ends_with("?notice=claim-opened"),
        "{thread}"
    );
    let claim_id = thread["/portal/partner/claims/".len()..thread.find('?').unwrap()].to_owned();
    // It is the API's claim, as if opened there.
    let api = assert_status(
        app.get(&format!("/v1/claims/{claim_id}"), s(&f.partner["api_key"]))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(api["kind"], "incorrect");
    assert_eq!(api["commission_id"], first.as_str());
    assert_eq!(api["expected_commission_minor"], 1_250);
    assert_eq!(api["note"], "two items, both mine");
    // The claims list names it by its order, and leads to its thread.
    let claims = ayu.page("/portal/partner/claims").await;
    assert!(
        claims.contains(&format!(
            "<a href=\"/portal/partner/claims/{claim_id}\">D-1</a>"
        )),
        "{claims}"
    );
    // The list now leads to the open claim, and so does the form's address.
    let list = ayu.page("/portal/partner/commissions").await;
    let href = format!("/portal/partner/claims/{claim_id}");
    assert!(list.contains(&format!("href=\"{href}\"")), "{list}");
    let (status, _) = ayu.get(&dispute).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    // The rejected one is disputed as a whole: no amount needed.
    let dispute2 = format!("/portal/partner/commissions/{second}/claim");
    let form = ayu.page(&dispute2).await;
    assert!(form.contains("was rejected or reversed"), "{form}");
    let res = ayu
        .post(&dispute2, &form, &[("note", "the coupon site is mine")])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(claims_count().await, 2);

    // The program's queue names both by their orders.
    let queue = owner.page("/portal/merchant/claims").await;
    assert!(queue.contains("D-1") && queue.contains("D-2"), "{queue}");
    assert!(
        !queue.contains(&first) && !queue.contains(&second),
        "{queue}"
    );
    // Both sides write in the first claim's thread.
    let mine = owner
        .page(&format!("/portal/merchant/claims/{claim_id}"))
        .await;
    assert!(mine.contains("two items, both mine"), "{mine}");
    assert!(
        mine.contains("Ayu") && mine.contains("opened the claim"),
        "{mine}"
    );
    assert!(
        mine.contains("Commission the partner expects: €12.50"),
        "{mine}"
    );
    assert!(mine.contains("<strong>Order D-1</strong>"), "{mine}");
    assert!(mine.contains("Commission: €10.00 (pending)"), "{mine}");
    let path = format!("/portal/merchant/claims/{claim_id}/comment");
    let res = owner.post(&path, &mine, &[("note", "  ")]).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Write something to send.")
    );
    let res = owner
        .post(&path, &mine, &[("note", "Which items were they?")])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&res),
        format!("/portal/merchant/claims/{claim_id}?notice=claim-commented#step-1")
    );
    let page = ayu.page(&href).await;
    assert!(page.contains("Which items were they?"), "{page}");
    let program_name = s(&f.program["name"]);
    assert!(
        page.contains(&format!("<strong>{program_name}</strong> · wrote")),
        "{page}"
    );
    let res = ayu
        .post(
            &format!("{href}/comment"),
            &page,
            &[("note", "A scarf and gloves.")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let mine = owner
        .page(&format!("/portal/merchant/claims/{claim_id}"))
        .await;
    assert!(mine.contains("<strong>You</strong> · wrote"), "{mine}");
    assert!(mine.contains("A scarf and gloves."), "{mine}");
    let api = assert_status(
        app.get(&format!("/v1/claims/{claim_id}"), s(&f.program["api_key"]))
            .await,
        StatusCode::OK,
    )
    .await;
    let notes: Vec<&str> = api["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["note"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        notes,
        [
            "two items, both mine",
            "Which items were they?",
            "A scarf and gloves."
        ]
    );

    // The program accepts at what Ayu expected: her commission holds it.
    let queue = owner.page("/portal/merchant/claims").await;
    let res = owner
        .post(
            &format!("/portal/merchant/claims/{claim_id}/accept"),
            &queue,
            &[],
        )
        .await;
    assert_eq!(
        location(&res),
        "/portal/merchant/claims?notice=claim-accepted"
    );
    assert_eq!(
        app.order(&f.program, "D-1")
            .await
            .of(&f.partner)
            .amount_minor,
        1_250
    );

    // In Bahasa Indonesia the thread speaks it.
    let indo = portal_account(&app, &f.partner, "ayu+utas@example.com", "id").await;
    let page = indo.page(&href).await;
    assert!(page.contains("membuka klaim"), "{page}");
    assert!(page.contains("Percakapan"), "{page}");

    // Nobody else reaches the thread, its comments or the dispute form.
    let (_, budi) = partner_person(&app, "Budi").await;
    assert_eq!(budi.get(&href).await.0, StatusCode::NOT_FOUND);
    assert_eq!(budi.get(&dispute2).await.0, StatusCode::NOT_FOUND);
    let own = budi.page("/portal/partner/commissions").await;
    let res = budi
        .post(&format!("{href}/comment"), &own, &[("note", "hi")])
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let (_, stranger) = merchant(&app).await;
    let path = format!("/portal/merchant/claims/{claim_id}");
    assert_eq!(stranger.get(&path).await.0, StatusCode::NOT_FOUND);
    // A partner's session does not reach the program's side of it, nor a
    // side that does not exist.
    assert_eq!(ayu.get(&path).await.0, StatusCode::NOT_FOUND);
    let nowhere = format!("/portal/admin/claims/{claim_id}");
    assert_eq!(ayu.get(&nowhere).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_dispute_past_the_programs_claim_window_is_refused_in_the_partners_language() {
    // Arrange: Ayu's commission on a sale of 40 days ago; the program takes
    // claims of sales up to 30 days old. Ayu reads Bahasa Indonesia.
    let (app, f) = with_sales(&["D-1"]).await;
    let commission = app.order(&f.program, "D-1").await.of(&f.partner).id.clone();
    sqlx::query("update conversions set occurred_at = now() - interval '40 days'")
        .execute(&app.db)
        .await
        .unwrap();
    let policy = format!("/v1/programs/{}/claim-policy", s(&f.program["id"]));
    let body = json!({"deadline_days": 30, "overdue_action": "accept", "window_days": 30});
    let res = app.put(&policy, s(&f.program["api_key"]), &body).await;
    assert_status(res, StatusCode::OK).await;
    let ayu = portal_account(&app, &f.partner, "ayu+late@example.com", "id").await;

    // The commissions page no longer offers the dispute, and says why.
    let dispute = format!("/portal/partner/commissions/{commission}/claim");
    let list = ayu.page("/portal/partner/commissions").await;
    assert!(!list.contains(&format!("href=\"{dispute}\"")), "{list}");
    assert!(
        list.contains(
            "data-too-late>Program ini menerima klaim atas penjualan paling lama 30 hari"
        ),
        "{list}"
    );

    // Act: the form, reached by its address all the same.
    let form = ayu.page(&dispute).await;
    let res = ayu
        .post(
            &dispute,
            &form,
            &[("expected", "12.50"), ("note", "terlambat")],
        )
        .await;

    // Assert: refused, saying why in Ayu's language, keeping the note; no claim.
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = res.text().await.unwrap();
    assert!(
        page.contains("Program ini menerima klaim atas penjualan paling lama 30 hari"),
        "{page}"
    );
    assert!(page.contains("terlambat"), "{page}");
    let claims: i64 = sqlx::query_scalar("select count(*) from claims")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(claims, 0);
}

#[tokio::test]
async fn a_merchant_sets_the_claim_policy_in_the_portal_as_the_api_does() {
    // Arrange: the program's owner, signed in; the default policy.
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    let owner = program_owner(&app, &f.program, "policy@shop.example").await;
    let page = owner.page("/portal/merchant/claims").await;
    assert!(
        page.contains(
            "name=\"deadline_days\" type=\"number\" min=\"1\" max=\"365\" required value=\"75\""
        ),
        "{page}"
    );
    assert!(
        page.contains("<option value=\"accept\" selected>"),
        "{page}"
    );
    let stored_policy = || async {
        sqlx::query_as::<_, (i32, String, Option<i32>)>(
            "select claim_deadline_days, claim_overdue_action, claim_window_days from programs",
        )
        .fetch_one(&app.db)
        .await
        .unwrap()
    };

    // Act and assert: a form out of range is refused field by field,
    // keeping what was typed, and changes nothing.
    let form = "/portal/merchant/claims/policy";
    let res = owner
        .post(
            form,
            &page,
            &[
                ("deadline_days", "0"),
                ("overdue_action", "decline"),
                ("window_days", "500"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let refused = res.text().await.unwrap();
    assert!(
        refused.contains("Days to answer: a whole number from 1 to 365."),
        "{refused}"
    );
    assert!(
        refused.contains("Days after the sale: a whole number from 1 to 400"),
        "{refused}"
    );
    assert!(refused.contains("value=\"500\""), "{refused}");
    assert_eq!(stored_policy().await, (75, "accept".to_owned(), None));
    // A valid one is the program's policy, as the API would have set it.
    let res = owner
        .post(
            form,
            &page,
            &[
                ("deadline_days", "30"),
                ("overdue_action", "decline"),
                ("window_days", "60"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&res),
        "/portal/merchant/claims?notice=saved#claim-policy"
    );
    assert_eq!(stored_policy().await, (30, "decline".to_owned(), Some(60)));
    let page = owner.page("/portal/merchant/claims").await;
    assert!(
        page.contains("<option value=\"decline\" selected>"),
        "{page}"
    );
    assert!(page.contains("max=\"400\" value=\"60\""), "{page}");
    // An empty window takes claims of any sale again.
    let res = owner
        .post(
            form,
            &page,
            &[
                ("deadline_days", "30"),
                ("overdue_action", "none"),
                ("window_days", ""),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(stored_policy().await, (30, "none".to_owned(), None));
    // A partner cannot set it.
    let ayu = portal_account(&app, &f.partner, "ayu+policy@example.com", "en").await;
    let partner_page = ayu.page("/portal/partner/claims").await;
    let res = ayu
        .post(
            form,
            &partner_page,
            &[("deadline_days", "1"), ("overdue_action", "accept")],
        )
        .await;
    assert!(res.status().is_client_error(), "{}", res.status());
    assert_eq!(stored_policy().await, (30, "none".to_owned(), None));
}
