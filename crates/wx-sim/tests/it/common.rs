//! Shared helpers: start a simulator on port 0, call it with reqwest, fetch tokens.

use serde_json::Value;
use wx_sim::{RunningSim, SimConfig, Simulator};

pub struct Env {
    pub sim: Simulator,
    pub running: RunningSim,
    pub http: reqwest::Client,
}

impl Env {
    pub async fn start(sim: Simulator) -> Env {
        let running = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Env { sim, running, http }
    }

    pub async fn generated() -> Env {
        Env::start(Simulator::generate(SimConfig::new(42, 300, 30))).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.running.base_url, path)
    }

    pub async fn get(&self, path: &str) -> Value {
        let resp = self.http.get(self.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.json().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: &Value) -> Value {
        let resp = self
            .http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "POST {path}");
        resp.json().await.unwrap()
    }

    /// A control-API call; returns (status, body).
    pub async fn control(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    /// A WeCom token for the app named `app` ("main", "limited") or "contacts".
    pub async fn wecom_token(&self, app: &str) -> String {
        let info = self.sim.info();
        let corp = &info.corps[0];
        let secret = if app == "contacts" {
            corp.contacts_secret.clone()
        } else {
            corp.apps
                .iter()
                .find(|a| a.name == app)
                .unwrap()
                .secret
                .clone()
        };
        let v = self
            .get(&format!(
                "/cgi-bin/gettoken?corpid={}&corpsecret={}",
                corp.corpid, secret
            ))
            .await;
        assert_eq!(v["errcode"], 0, "{v}");
        v["access_token"].as_str().unwrap().to_owned()
    }
}

pub fn errcode(v: &Value) -> i64 {
    v.get("errcode").and_then(Value::as_i64).unwrap_or(0)
}
