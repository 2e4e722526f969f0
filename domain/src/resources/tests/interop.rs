//! What the real orchestrator sends (protocol §8): named creates, `environment`, the
//! `needs_information` round trip, links, configuration-only updates.

use super::buy_domain::builtin_candidates as candidates;
use super::*;

impl W {
    /// A create or link as the orchestrator sends it, with an optional `Idempotency-Key`.
    fn call(
        &mut self,
        call: CreateCall,
        body: Value,
        key: Option<&str>,
        cands: Option<Vec<Candidate>>,
    ) -> Result<String, ResourceError> {
        let req = parse_create(body.to_string().as_bytes(), &self.catalog, call, key)?;
        let cat = self.catalog.clone();
        let prepared = match call {
            CreateCall::Create => prepare_create(&self.account, &req, &cat)?,
            CreateCall::Link => prepare_link(&self.account, &req, &cat)?,
        };
        let id = match prepared {
            Preparation::Existing(id) => id,
            _ => {
                let ids = self.ids();
                match call {
                    CreateCall::Create => self.run(|d| create(d, &req, &cat, ids, cands))?,
                    CreateCall::Link => self.run(|d| link(d, &req, &cat, &ids.resource_id))?,
                }
            }
        };
        if let Some(info) = &req.submitted_information {
            let token = req.payment_token.clone();
            self.run(|d| submit_information(d, &id, info, token, &cat, "ch_info"))?;
        }
        Ok(id)
    }

    fn with_plan() -> W {
        let mut w = W::new();
        w.create(json!({"service_id": "free", "project_id": "p"}), None)
            .unwrap();
        w
    }
}

fn operator_answer(status: &str) -> ActionResult {
    ActionResult::Operator {
        status: status.into(),
        access_configuration: None,
        retry_after: None,
        error: None,
        schema: None,
        message: None,
    }
}

#[test]
fn named_creates_make_several_resources_of_one_service_in_one_project() {
    let mut w = W::with_plan();
    let token = |label: &str| {
        json!({"service_id": "api_token", "project_id": "p", "environment": "prod",
               "configuration": {"label": label}})
    };
    let a = w
        .call(CreateCall::Create, token("ci"), Some("key-a"), None)
        .unwrap();
    let b = w
        .call(CreateCall::Create, token("deploy"), Some("key-b"), None)
        .unwrap();
    assert_ne!(a, b, "two keys, two tokens in one project");
    // The same key and body: the same resource, nothing new.
    let count = w.account.resources.len();
    assert_eq!(
        w.call(CreateCall::Create, token("ci"), Some("key-a"), None),
        Ok(a.clone())
    );
    assert_eq!(w.account.resources.len(), count);
    // The same key, another body: refused, nothing changed.
    let before = w.account.clone();
    assert_eq!(
        w.call(CreateCall::Create, token("other"), Some("key-a"), None),
        Err(ResourceError::IdempotencyConflict)
    );
    assert_eq!(w.account, before);
    // environment is stored and echoed.
    let v = render(w.res(&a), "acct_x", &BTreeMap::new());
    assert_eq!(v["environment"], "prod");
    // An unnamed create still finds the project's token (the old rule).
    assert_eq!(
        w.call(CreateCall::Create, token("ci"), None, None),
        Ok(a.clone())
    );
}

#[test]
fn orchestrator_resource_id_names_a_resource_across_keys() {
    let mut w = W::with_plan();
    let body = |orid: &str| json!({"service_id": "api_token", "project_id": "p", "orchestrator_resource_id": orid});
    let a = w
        .call(CreateCall::Create, body("orr_1"), Some("k1"), None)
        .unwrap();
    // A retry under a fresh key but the same orchestrator id is the same resource.
    assert_eq!(
        w.call(CreateCall::Create, body("orr_1"), Some("k2"), None),
        Ok(a.clone())
    );
    assert_eq!(
        w.call(CreateCall::Create, body("orr_1"), None, None),
        Ok(a.clone())
    );
    let b = w
        .call(CreateCall::Create, body("orr_2"), None, None)
        .unwrap();
    assert_ne!(a, b);
    assert_eq!(
        render(w.res(&a), "acct_x", &BTreeMap::new())["orchestrator_resource_id"],
        "orr_1"
    );
    // The same orchestrator id on another service is another body.
    assert_eq!(
        w.call(
            CreateCall::Create,
            json!({"service_id": "database", "project_id": "p", "orchestrator_resource_id": "orr_1"}),
            None,
            None
        ),
        Err(ResourceError::IdempotencyConflict)
    );
}

#[test]
fn plans_stay_one_per_account_whatever_the_names() {
    let mut w = W::with_plan();
    let plan = w.account.resources[0].id.clone();
    assert_eq!(
        w.call(
            CreateCall::Create,
            json!({"service_id": "free", "project_id": "q"}),
            Some("another-key"),
            None
        ),
        Ok(plan)
    );
    assert!(matches!(
        w.call(CreateCall::Create, paid_plan("spt_1"), Some("k"), None),
        Err(ResourceError::PlanAlreadyActive { .. })
    ));
}

#[test]
fn bad_names_and_information_are_refused() {
    let c = catalog();
    let parse = |b: &str, key: Option<&str>| {
        parse_create(b.as_bytes(), &c, CreateCall::Create, key).map(|_| ())
    };
    let ok = r#"{"service_id":"api_token","project_id":"p"}"#;
    assert!(parse(ok, Some("k")).is_ok());
    for key in ["", "  ", "ké", &"k".repeat(256)] {
        assert!(
            matches!(
                parse(ok, Some(key)),
                Err(ResourceError::InvalidRequest { .. })
            ),
            "{key:?}"
        );
    }
    for body in [
        r#"{"service_id":"api_token","project_id":"p","orchestrator_resource_id":7}"#,
        r#"{"service_id":"api_token","project_id":"p","orchestrator_resource_id":"a b"}"#,
        r#"{"service_id":"api_token","project_id":"p","environment":"pr od"}"#,
        r#"{"service_id":"api_token","project_id":"p","submitted_information":"yes"}"#,
    ] {
        assert!(
            matches!(parse(body, None), Err(ResourceError::InvalidRequest { .. })),
            "{body}"
        );
    }
    // Explicit nulls are absent.
    let req = parse_create(
        br#"{"service_id":"api_token","project_id":"p","environment":null,"orchestrator_resource_id":null,"submitted_information":null}"#,
        &c,
        CreateCall::Create,
        None,
    )
    .unwrap();
    assert!(!req.named() && req.environment.is_none() && req.submitted_information.is_none());
    // A link may leave out a configuration the create requires; a create may not.
    let domain = r#"{"service_id":"domain","project_id":"p"}"#;
    assert!(parse_create(domain.as_bytes(), &c, CreateCall::Link, None).is_ok());
    assert!(matches!(
        parse(domain, None),
        Err(ResourceError::InvalidConfiguration { .. })
    ));
}

#[test]
fn a_resource_stored_before_names_reads_back_and_writes_the_same() {
    let old = r#"{"id":"res_1","service_id":"api_token","project_id":"p","kind":"deployable","status":"complete","created_at":1800000000,"updated_at":1800000000,"configuration":{},"detail":{"type":"api_token","scopes":["read"],"label":null,"generation":1,"token_hash":"ab"},"job":null,"error":null,"message":null}"#;
    let r: Resource = serde_json::from_str(old).unwrap();
    assert_eq!(
        (r.origin.as_ref(), r.environment.as_ref(), r.linked),
        (None, None, false)
    );
    assert_eq!(serde_json::to_string(&r).unwrap(), old);
    let op = r#"{"type":"operator","access_configuration":{"URL":"x"}}"#;
    let d: Detail = serde_json::from_str(op).unwrap();
    assert_eq!(serde_json::to_string(&d).unwrap(), op);
}

#[test]
fn a_domain_quote_is_confirmed_by_submitted_information() {
    let mut w = W::with_plan();
    let body = |info: Value| {
        json!({"service_id": "domain", "project_id": "p", "configuration": {"domain_query": "acme"},
               "payment_credentials": {"type": "stripe_payment_token", "stripe_payment_token": "spt_d"},
               "submitted_information": info})
    };
    let id = w
        .call(
            CreateCall::Create,
            body(Value::Null),
            Some("dom"),
            Some(candidates()),
        )
        .unwrap();
    assert_eq!(w.res(&id).status, ResourceStatus::NeedsInformation);
    let v = render(w.res(&id), "acct_x", &BTreeMap::new());
    let schema = &v["needs_information"]["schema"];
    assert_eq!(schema, &information_schema(w.res(&id)).unwrap());
    // What does not match the schema is refused by field, and changes nothing.
    let before = w.account.clone();
    for (info, field) in [
        (
            json!({"domain": "acme-app.apps.example.dev"}),
            "submitted_information/amount",
        ),
        (
            json!({"domain": "acme.apps.example.dev", "amount": 1200}),
            "submitted_information/domain",
        ),
        (
            json!({"domain": "acme-app.apps.example.dev", "amount": "12"}),
            "submitted_information/amount",
        ),
        (
            json!({"domain": "acme-app.apps.example.dev", "amount": 1200, "x": 1}),
            "submitted_information/x",
        ),
    ] {
        match w.call(CreateCall::Create, body(info.clone()), Some("dom"), None) {
            Err(ResourceError::InvalidInformation { field: f, .. }) => {
                assert_eq!(f, field, "{info}")
            }
            other => panic!("{info}: {other:?}"),
        }
        assert_eq!(w.account, before);
    }
    // The wrong amount is the confirmation's own refusal.
    assert!(matches!(
        w.call(
            CreateCall::Create,
            body(json!({"domain": "acme-app.apps.example.dev", "amount": 1000})),
            Some("dom"),
            None
        ),
        Err(ResourceError::PriceChanged { amount: 1200, .. })
    ));
    assert_eq!(w.account, before);
    let info = json!({"domain": "acme-app.apps.example.dev", "amount": 1200});
    assert_eq!(
        w.call(CreateCall::Create, body(info.clone()), Some("dom"), None),
        Ok(id.clone())
    );
    assert_eq!(w.res(&id).status, ResourceStatus::Pending);
    assert!(matches!(
        w.res(&id).job.as_ref().map(|j| &j.job),
        Some(Job::BuyDomain { amount: 1200, .. })
    ));
    // The same call again (a retry) changes nothing more: one purchase.
    let after = w.account.clone();
    assert_eq!(
        w.call(CreateCall::Create, body(info), Some("dom"), None),
        Ok(id)
    );
    assert_eq!(w.account, after);
}

#[test]
fn an_operator_backend_asks_for_information_and_gets_it() {
    let mut w = W::with_plan();
    let id = w
        .call(
            CreateCall::Create,
            json!({"service_id": "database", "project_id": "p", "environment": "prod"}),
            Some("db"),
            None,
        )
        .unwrap();
    let Some(Action::CallOperator { body, .. }) = w.next(&id) else {
        panic!()
    };
    assert_eq!(body["environment"], "prod");
    assert!(body.get("submitted_information").is_none());
    // A schema we cannot enforce is the backend's error, not a question.
    let mut bad = operator_answer("needs_information");
    if let ActionResult::Operator { schema, .. } = &mut bad {
        *schema = Some(json!({"type": "object", "oneOf": []}));
    }
    assert!(matches!(
        w.feed(&id, bad),
        Err(ResourceError::Backend { .. })
    ));
    let id = w
        .call(
            CreateCall::Create,
            json!({"service_id": "database", "project_id": "p"}),
            Some("db2"),
            None,
        )
        .unwrap();
    let asked = json!({"type": "object", "properties": {"region": {"type": "string", "enum": ["eu", "us"]}},
                       "required": ["region"], "additionalProperties": false});
    let mut answer = operator_answer("needs_information");
    if let ActionResult::Operator {
        schema, message, ..
    } = &mut answer
    {
        *schema = Some(asked.clone());
        *message = Some("which region?".into());
    }
    w.feed(&id, answer).unwrap();
    let r = w.res(&id).clone();
    assert_eq!(r.status, ResourceStatus::NeedsInformation);
    assert!(r.job.is_none());
    let v = render(&r, "acct_x", &BTreeMap::new());
    assert_eq!(v["needs_information"]["schema"], asked);
    assert_eq!(v["needs_information"]["message"], "which region?");
    let body = |info: Value| json!({"service_id": "database", "project_id": "p", "submitted_information": info});
    assert!(matches!(
        w.call(
            CreateCall::Create,
            body(json!({"region": "mars"})),
            Some("db2"),
            None
        ),
        Err(ResourceError::InvalidInformation { .. })
    ));
    w.call(
        CreateCall::Create,
        body(json!({"region": "eu"})),
        Some("db2"),
        None,
    )
    .unwrap();
    assert_eq!(w.res(&id).status, ResourceStatus::Pending);
    let Some(Action::CallOperator { body, .. }) = w.next(&id) else {
        panic!()
    };
    assert_eq!(body["action"], "create");
    assert_eq!(body["submitted_information"], json!({"region": "eu"}));
    let records: Vec<&str> = w.log.iter().map(|r| r.action.as_str()).collect();
    assert!(records.contains(&"resource.information_requested"));
    assert!(records.contains(&"resource.information_submitted"));
}

#[test]
fn what_linking_means_for_each_kind_of_service() {
    let mut w = W::with_plan();
    let plan = w.account.resources[0].id.clone();
    // An API token cannot be linked; a plan links to the account's plan of that service.
    assert!(matches!(
        w.call(
            CreateCall::Link,
            json!({"service_id": "api_token", "project_id": "p"}),
            None,
            None
        ),
        Err(ResourceError::LinkNotSupported { .. })
    ));
    assert_eq!(
        w.call(
            CreateCall::Link,
            json!({"service_id": "free", "project_id": "q"}),
            None,
            None
        ),
        Ok(plan)
    );
    assert!(matches!(
        w.call(CreateCall::Link, paid_plan("spt_1"), None, None),
        Err(ResourceError::LinkTargetNotFound { .. })
    ));
    // A domain: needs_information for its name, then only a name this account registered.
    let link = w
        .call(
            CreateCall::Link,
            json!({"service_id": "domain", "project_id": "q"}),
            Some("l1"),
            None,
        )
        .unwrap();
    let r = w.res(&link).clone();
    assert!(r.linked);
    assert_eq!(r.status, ResourceStatus::NeedsInformation);
    let v = render(&r, "acct_x", &BTreeMap::new());
    assert_eq!(
        v["needs_information"]["schema"]["required"],
        json!(["domain"])
    );
    assert_eq!(v["linked"], true);
    let named = |d: &str| json!({"service_id": "domain", "project_id": "q", "submitted_information": {"domain": d}});
    let before = w.account.clone();
    assert!(matches!(
        w.call(
            CreateCall::Link,
            named("someone-else.example"),
            Some("l1"),
            None
        ),
        Err(ResourceError::LinkTargetNotFound { .. })
    ));
    assert_eq!(w.account, before);
    // Register one, then link it.
    let bought = w
        .call(
            CreateCall::Create,
            json!({"service_id": "domain", "project_id": "p", "configuration": {"domain_query": "acme"},
                   "payment_credentials": {"type": "stripe_payment_token", "stripe_payment_token": "spt_d"}}),
            None,
            Some(candidates()),
        )
        .unwrap();
    let i = w
        .account
        .resources
        .iter()
        .position(|r| r.id == bought)
        .unwrap();
    w.account.resources[i].status = ResourceStatus::Complete;
    w.account.resources[i].detail = Detail::Domain {
        query: "acme".into(),
        registrar: Registrar::Builtin,
        quote: None,
        payment_token: None,
        domain: Some("acme-app.apps.example.dev".into()),
        expires_at: Some(T0 + 365 * 86400),
    };
    w.call(
        CreateCall::Link,
        named("ACME-app.apps.example.dev."),
        Some("l1"),
        None,
    )
    .unwrap();
    let v = render(w.res(&link), "acct_x", &BTreeMap::new());
    assert_eq!(v["status"], "complete");
    assert_eq!(
        v["complete"]["access_configuration"]["DOMAIN"],
        "acme-app.apps.example.dev"
    );
    // Removing the link detaches it: no release of the name.
    let cat = w.catalog.clone();
    assert_eq!(w.run(|d| remove(d, &link, &cat)), Ok(true));
    assert_eq!(w.res(&link).status, ResourceStatus::Removed);
    assert_eq!(w.res(&bought).status, ResourceStatus::Complete);
    assert!(w.res(&bought).job.is_none());
}

#[test]
fn a_linked_operator_service_is_verified_by_the_backend_and_only_detached() {
    let mut w = W::with_plan();
    let id = w
        .call(
            CreateCall::Link,
            json!({"service_id": "database", "project_id": "p"}),
            Some("l"),
            None,
        )
        .unwrap();
    let Some(Action::CallOperator { body, .. }) = w.next(&id) else {
        panic!()
    };
    assert_eq!(
        (body["action"].as_str(), body["linked"].as_bool()),
        (Some("link"), Some(true))
    );
    let mut ask = operator_answer("needs_information");
    if let ActionResult::Operator { schema, .. } = &mut ask {
        *schema = Some(
            json!({"type": "object", "properties": {"resource_id": {"type": "string", "minLength": 1}},
                              "required": ["resource_id"]}),
        );
    }
    w.feed(&id, ask).unwrap();
    w.call(
        CreateCall::Link,
        json!({"service_id": "database", "project_id": "p", "submitted_information": {"resource_id": "db_42"}}),
        Some("l"),
        None,
    )
    .unwrap();
    let Some(Action::CallOperator { body, .. }) = w.next(&id) else {
        panic!()
    };
    assert_eq!(body["action"], "link");
    assert_eq!(body["submitted_information"]["resource_id"], "db_42");
    let mut done = operator_answer("complete");
    if let ActionResult::Operator {
        access_configuration,
        ..
    } = &mut done
    {
        *access_configuration = Some(BTreeMap::from([(
            "DATABASE_URL".to_string(),
            "postgres://db_42".to_string(),
        )]));
    }
    w.feed(&id, done).unwrap();
    assert_eq!(w.res(&id).status, ResourceStatus::Complete);
    assert!(w.log.iter().any(|r| r.action == "resource.linked"));
    // Its configuration cannot change; removing it calls no backend.
    let cat = w.catalog.clone();
    let up = UpdateRequest {
        service_id: None,
        configuration: Some(json!({"fail": "x"})),
        payment_token: None,
    };
    assert!(matches!(
        w.run(|d| update_service(d, &id, &up, &cat, "ch")),
        Err(ResourceError::ConfigurationNotUpdatable { .. })
    ));
    assert_eq!(w.run(|d| remove(d, &id, &cat)), Ok(true));
    assert_eq!(w.next(&id), None);
}

#[test]
fn configuration_only_updates() {
    let mut w = W::with_plan();
    let cat = w.catalog.clone();
    let update = |c: Value| UpdateRequest {
        service_id: None,
        configuration: Some(c),
        payment_token: None,
    };
    // An API token takes its new scopes at once, bounded by what the service offers.
    let tok = w
        .call(
            CreateCall::Create,
            json!({"service_id": "api_token", "project_id": "p"}),
            None,
            None,
        )
        .unwrap();
    let offered = match &w.res(&tok).detail {
        Detail::ApiToken { scopes, .. } => scopes.clone(),
        _ => panic!(),
    };
    let one = offered[0].clone();
    w.run(|d| {
        update_service(
            d,
            &tok,
            &update(json!({"scopes": [one], "label": "ci"})),
            &cat,
            "ch",
        )
    })
    .unwrap();
    match &w.res(&tok).detail {
        Detail::ApiToken {
            scopes,
            label,
            generation,
            ..
        } => {
            assert_eq!(
                (scopes.clone(), label.as_deref(), *generation),
                (vec![one.clone()], Some("ci"), 1)
            );
        }
        _ => panic!(),
    }
    // A configuration the schema refuses changes nothing.
    let before = w.account.clone();
    assert!(matches!(
        w.run(|d| update_service(d, &tok, &update(json!({"scopes": "all"})), &cat, "ch")),
        Err(ResourceError::InvalidConfiguration { .. })
    ));
    assert_eq!(w.account, before);
    // A domain's query is what was bought.
    let dom = w
        .call(
            CreateCall::Create,
            json!({"service_id": "domain", "project_id": "p", "configuration": {"domain_query": "acme"}}),
            None,
            Some(candidates()),
        )
        .unwrap();
    assert!(matches!(
        w.run(|d| update_service(
            d,
            &dom,
            &update(json!({"domain_query": "other"})),
            &cat,
            "ch"
        )),
        Err(ResourceError::ConfigurationNotUpdatable { .. })
    ));
    // An operator service asks its backend, which keeps the old configuration until it is done.
    let db = w
        .call(
            CreateCall::Create,
            json!({"service_id": "database", "project_id": "p"}),
            None,
            None,
        )
        .unwrap();
    w.feed(&db, operator_answer("complete")).unwrap();
    w.run(|d| update_service(d, &db, &update(json!({"fail": "later"})), &cat, "ch"))
        .unwrap();
    assert_eq!(w.res(&db).status, ResourceStatus::Pending);
    assert_eq!(w.res(&db).configuration, json!({}));
    let Some(Action::CallOperator { body, .. }) = w.next(&db) else {
        panic!()
    };
    assert_eq!(
        (body["action"].as_str(), &body["configuration"]),
        (Some("update"), &json!({"fail": "later"}))
    );
    // Refused: the old configuration stays and the resource works as before.
    let mut refused = operator_answer("error");
    if let ActionResult::Operator { error, .. } = &mut refused {
        *error = Some(ErrorInfo {
            code: "nope".into(),
            message: "cannot".into(),
        });
    }
    let _ = w.feed(&db, refused);
    assert_eq!(w.res(&db).status, ResourceStatus::Complete);
    assert_eq!(w.res(&db).configuration, json!({}));
    // Accepted: applied.
    w.run(|d| update_service(d, &db, &update(json!({"fail": "later"})), &cat, "ch"))
        .unwrap();
    w.feed(&db, operator_answer("complete")).unwrap();
    assert_eq!(w.res(&db).configuration, json!({"fail": "later"}));
    // The resource's own service_id with a configuration is the same change; a plan change
    // and a new configuration together are refused.
    let same = UpdateRequest {
        service_id: Some("api_token".into()),
        configuration: Some(json!({"label": "again"})),
        payment_token: None,
    };
    w.run(|d| update_service(d, &tok, &same, &cat, "ch"))
        .unwrap();
    assert_eq!(w.res(&tok).configuration["label"], "again");
    assert!(parse_update(b"{}").is_err());
}

#[test]
fn information_sent_with_the_first_create_goes_to_the_backend_at_once() {
    let mut w = W::with_plan();
    let id = w
        .call(
            CreateCall::Create,
            json!({"service_id": "database", "project_id": "p",
                   "submitted_information": {"region": "eu"}}),
            Some("db-at-once"),
            None,
        )
        .unwrap();
    let Some(Action::CallOperator { body, .. }) = w.next(&id) else {
        panic!()
    };
    assert_eq!(body["submitted_information"], json!({"region": "eu"}));
}
