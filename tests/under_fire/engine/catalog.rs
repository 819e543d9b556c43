//! A Service Catalog stand-in (JSON 1.1): provisioned products with their
//! provisioning records (which carry the tags), a search index, and
//! `TerminateProvisionedProduct` made idempotent by its `TerminateToken`, as AWS
//! documents it. A termination's record is `IN_PROGRESS`, then `SUCCEEDED` (the
//! product is gone) or, for a doomed product, `FAILED` (the product is `TAINTED`).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::inventory::{Inventory, Service};
use super::mgn::Answer;

pub struct Product {
    pub account: String,
    pub id: String,
    pub name: String,
    pub tags: BTreeMap<String, String>,
    pub status: &'static str,
    pub provisioning_record: String,
    pub last_record: String,
    pub doomed: bool,
    pub stuck: bool,
    pub gone: bool,
    created_epoch: f64,
}

pub struct Record {
    pub id: String,
    pub account: String,
    pub product: String,
    pub kind: &'static str,
    pub tags: BTreeMap<String, String>,
    pub completes: Option<Instant>,
    pub fails: bool,
    pub status: &'static str,
    /// When it was made (epoch seconds), as `RecordDetail.CreatedTime` says.
    pub created_epoch: f64,
}

pub struct Catalog {
    pub products: Vec<Product>,
    pub records: Vec<Record>,
    /// (account, product, token) → the record that token started.
    tokens: HashMap<(String, String, String), String>,
    ms_per_second: f64,
}

fn error(code: &str, message: &str) -> Answer {
    (400, json!({"__type": code, "Message": message}))
}

impl Catalog {
    pub fn new(inventory: &Inventory, compress: f64) -> Catalog {
        let mut records = Vec::new();
        let created_epoch = time::OffsetDateTime::now_utc().unix_timestamp() as f64 - 86_400.0 * 40.0;
        let products = inventory
            .resources
            .iter()
            .filter(|r| r.service == Service::Catalog)
            .map(|r| {
                let record = format!("rec-p{}", &r.id[3..]);
                records.push(Record {
                    id: record.clone(),
                    account: r.account.clone(),
                    product: r.id.clone(),
                    kind: "PROVISION_PRODUCT",
                    tags: r.tags(),
                    completes: None,
                    fails: false,
                    status: "SUCCEEDED",
                    created_epoch,
                });
                Product {
                    account: r.account.clone(),
                    id: r.id.clone(),
                    name: r.name.clone().unwrap_or_default(),
                    tags: r.tags(),
                    status: "AVAILABLE",
                    provisioning_record: record.clone(),
                    last_record: record,
                    doomed: r.doomed,
                    stuck: r.stuck,
                    gone: false,
                    created_epoch,
                }
            })
            .collect();
        Catalog { products, records, tokens: HashMap::new(), ms_per_second: 1000.0 / compress }
    }

    fn advance(&mut self) {
        let now = Instant::now();
        for record in self.records.iter_mut().filter(|r| r.status == "IN_PROGRESS") {
            if record.completes.is_none_or(|t| t > now) {
                continue;
            }
            record.status = if record.fails { "FAILED" } else { "SUCCEEDED" };
            if let Some(p) = self.products.iter_mut().find(|p| p.account == record.account && p.id == record.product) {
                if record.fails {
                    p.status = "TAINTED";
                } else {
                    p.gone = true;
                }
            }
        }
    }

    fn product(&self, account: &str, id: Option<&str>, name: Option<&str>) -> Option<usize> {
        self.products.iter().position(|p| {
            p.account == account && !p.gone && (id.is_some_and(|id| p.id == id) || name.is_some_and(|n| p.name == n))
        })
    }

    fn record_json(&self, r: &Record) -> Value {
        let mut detail = json!({
            "RecordId": r.id, "ProvisionedProductId": r.product, "Status": r.status, "RecordType": r.kind,
            "RecordTags": r.tags.iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect::<Vec<_>>(),
            "RecordErrors": [], "CreatedTime": r.created_epoch
        });
        if r.status == "FAILED" {
            detail["RecordErrors"] =
                json!([{"Code": "StackDeleteFailed", "Description": "the stack's bucket is not empty"}]);
        }
        detail
    }

    fn product_json(p: &Product) -> Value {
        json!({
            "Id": p.id, "Name": p.name, "Arn": format!("arn:aws:servicecatalog:us-east-1:{}:stack/{}/{}", p.account, p.name, p.id),
            "Type": "CFN_STACK", "Status": p.status, "CreatedTime": p.created_epoch, "ProductId": "prod-fire00000001",
            "ProvisioningArtifactId": "pa-fire00000001", "LastRecordId": p.last_record,
            "LastProvisioningRecordId": p.provisioning_record, "LastSuccessfulProvisioningRecordId": p.provisioning_record
        })
    }

    pub fn answer(&mut self, account: &str, operation: &str, body: &Value) -> Answer {
        self.advance();
        match operation {
            "SearchProvisionedProducts" => {
                let query = body["Filters"]["SearchQuery"][0].as_str().unwrap_or_default();
                let (field, value) = query.split_once(':').unwrap_or(("", ""));
                let mut found: Vec<Value> = self
                    .products
                    .iter()
                    .filter(|p| p.account == account && !p.gone)
                    .filter(|p| match field {
                        "id" => p.id == value,
                        "name" => p.name == value,
                        "productId" => value == "prod-fire00000001",
                        _ => true,
                    })
                    .map(|p| {
                        let mut v = Catalog::product_json(p);
                        v["Tags"] =
                            json!(p.tags.iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect::<Vec<_>>());
                        v
                    })
                    .collect();
                let size = body["PageSize"].as_u64().unwrap_or(20).clamp(1, 100) as usize;
                let from: usize = body["PageToken"].as_str().and_then(|t| t.parse().ok()).unwrap_or(0);
                let total = found.len();
                let rest: Vec<Value> = found.drain(..).skip(from).take(size).collect();
                let mut answer = json!({"ProvisionedProducts": rest, "TotalResultsCount": total});
                if from + size < total {
                    answer["NextPageToken"] = json!((from + size).to_string());
                }
                (200, answer)
            }
            "DescribeProvisionedProduct" => match self.product(account, body["Id"].as_str(), body["Name"].as_str()) {
                Some(i) => (200, json!({"ProvisionedProductDetail": Catalog::product_json(&self.products[i])})),
                None => error("ResourceNotFoundException", "no such provisioned product"),
            },
            "DescribeRecord" => {
                let id = body["Id"].as_str().unwrap_or_default();
                match self.records.iter().find(|r| r.account == account && r.id == id) {
                    Some(r) => (200, json!({"RecordDetail": self.record_json(r), "RecordOutputs": []})),
                    None => error("ResourceNotFoundException", "no such record"),
                }
            }
            "TerminateProvisionedProduct" => {
                let token = body["TerminateToken"].as_str().unwrap_or_default().to_owned();
                let Some(i) = self.product(
                    account,
                    body["ProvisionedProductId"].as_str(),
                    body["ProvisionedProductName"].as_str(),
                ) else {
                    return error("ResourceNotFoundException", "no such provisioned product");
                };
                let key = (account.to_owned(), self.products[i].id.clone(), token.clone());
                if let Some(record) = self.tokens.get(&key).and_then(|id| self.records.iter().find(|r| &r.id == id)) {
                    return (200, json!({"RecordDetail": self.record_json(record)}));
                }
                if !matches!(self.products[i].status, "AVAILABLE" | "TAINTED" | "ERROR") {
                    return error("InvalidStateException", "the product is UNDER_CHANGE");
                }
                let n = self.records.len() + 1;
                let runs = Duration::from_millis(((20 + (n as u64 * 6151) % 60) as f64 * self.ms_per_second) as u64)
                    .max(super::world::UNDERWAY_AT_LEAST);
                let p = &mut self.products[i];
                let record = Record {
                    id: format!("rec-t{n:010}"),
                    account: account.to_owned(),
                    product: p.id.clone(),
                    kind: "TERMINATE_PROVISIONED_PRODUCT",
                    tags: p.tags.clone(),
                    completes: (!p.stuck).then(|| Instant::now() + runs),
                    fails: p.doomed,
                    status: "IN_PROGRESS",
                    created_epoch: time::OffsetDateTime::now_utc().unix_timestamp() as f64,
                };
                p.status = "UNDER_CHANGE";
                p.last_record = record.id.clone();
                self.tokens.insert(key, record.id.clone());
                let answer = json!({"RecordDetail": self.record_json(&record)});
                self.records.push(record);
                (200, answer)
            }
            _ => error("InvalidParametersException", operation),
        }
    }

    /// Every termination the service accepted: (account, product, record).
    pub fn terminations(&self) -> impl Iterator<Item = &Record> {
        self.records.iter().filter(|r| r.kind == "TERMINATE_PROVISIONED_PRODUCT")
    }
}
