//! A scripted HTTP server for answers the simulator cannot be made to give (an errmsg echoing our token,
//! HTTP 500, garbled JSON, a hung connection). Each path answers from its queue, then from its default.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};

#[derive(Default)]
struct Script {
    queued: HashMap<String, VecDeque<(u16, String)>>,
    default: HashMap<String, (u16, String)>,
    calls: Vec<(String, String)>,
}

#[derive(Clone, Default)]
pub struct Fake {
    script: Arc<Mutex<Script>>,
}

impl Fake {
    pub async fn start() -> (Fake, String) {
        let fake = Fake::default();
        let handler_fake = fake.clone();
        let app = Router::new().fallback(move |req: Request<Body>| {
            let fake = handler_fake.clone();
            async move { fake.answer(req) }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (fake, format!("http://{addr}"))
    }

    fn answer(&self, req: Request<Body>) -> Response<Body> {
        let path = req.uri().path().to_owned();
        let query = req.uri().query().unwrap_or("").to_owned();
        let mut script = self.script.lock().unwrap();
        script.calls.push((path.clone(), query));
        let next = script.queued.get_mut(&path).and_then(VecDeque::pop_front);
        let (status, body) = next
            .or_else(|| script.default.get(&path).cloned())
            .unwrap_or((404, r#"{"errcode":404,"errmsg":"no script"}"#.to_owned()));
        Response::builder()
            .status(StatusCode::from_u16(status).unwrap())
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap()
    }

    /// Answer `path` with this once (queued answers come before the default).
    pub fn push(&self, path: &str, status: u16, body: &str) {
        let mut script = self.script.lock().unwrap();
        script
            .queued
            .entry(path.to_owned())
            .or_default()
            .push_back((status, body.to_owned()));
    }

    pub fn always(&self, path: &str, status: u16, body: &str) {
        self.script
            .lock()
            .unwrap()
            .default
            .insert(path.to_owned(), (status, body.to_owned()));
    }

    pub fn calls(&self, path: &str) -> usize {
        self.script
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|(p, _)| p == path)
            .count()
    }

    /// The query strings `path` was called with.
    pub fn queries(&self, path: &str) -> Vec<String> {
        self.script
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, q)| q.clone())
            .collect()
    }
}
