//! The back-to-back relay: authentication, routing (rules and pools),
//! sessions and legs. Uses the store; the SIP engine below it knows nothing
//! of either.

pub mod auth;
pub mod b2bua;
pub mod catalog;
pub mod client_dialogs;
pub mod cluster;
pub mod core;
pub mod health;
pub mod legs;
pub mod publisher;
pub mod refusal;
pub mod registrar;
pub mod request_view;
pub mod rules;
pub mod session;
pub mod table;
pub mod target;
pub mod timers;

use tokio::sync::{mpsc, oneshot};

/// Requests from the API to the relay core.
#[derive(Debug)]
pub enum RelayCommand {
    /// End a live session (BYE on both legs, reason `admin`); the reply
    /// says whether this node held it.
    Terminate {
        session_id: String,
        reply: oneshot::Sender<bool>,
    },
}

/// The API's handle on the relay core of this node.
#[derive(Debug, Clone)]
pub struct RelayHandle {
    tx: mpsc::Sender<RelayCommand>,
}

impl RelayHandle {
    pub fn new(tx: mpsc::Sender<RelayCommand>) -> Self {
        Self { tx }
    }

    /// Terminates a session held by this node; false when it holds none
    /// with that id (or the relay is stopping).
    pub async fn terminate(&self, session_id: &str) -> bool {
        let (reply, answer) = oneshot::channel();
        let command = RelayCommand::Terminate {
            session_id: session_id.to_string(),
            reply,
        };
        if self.tx.send(command).await.is_err() {
            return false;
        }
        answer.await.unwrap_or(false)
    }
}
