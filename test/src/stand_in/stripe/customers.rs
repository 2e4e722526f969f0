//! Customers: `POST /v1/customers` (reads go through `routes.rs`).

use serde_json::json;

use crate::stand_in::clock::now;
use crate::stand_in::http::Reply;
use crate::stand_in::state::State;

use super::params::{allow, email, metadata, opt_str, Params, Res};

pub(crate) fn create_customer(st: &mut State, p: &Params) -> Res<Reply> {
    allow(
        p,
        &[
            "email",
            "name",
            "description",
            "phone",
            "metadata",
            "expand",
        ],
        "",
    )?;
    let email = email(p)?;
    let name = opt_str(p, "name", "name")?;
    let description = opt_str(p, "description", "description")?;
    let phone = opt_str(p, "phone", "phone")?;
    let metadata = metadata(p)?;
    let customer = json!({
        "id": st.id("cus"),
        "object": "customer",
        "created": now(),
        "livemode": false,
        "email": email,
        "name": name,
        "description": description,
        "phone": phone,
        "metadata": metadata,
        "balance": 0,
        "currency": null,
        "delinquent": false,
        "invoice_settings": {"default_payment_method": null},
    });
    st.customers.push(customer.clone());
    Ok(Reply::json(200, &customer))
}
