use crate::components::chart::{BarChart, Series, UsageBar};
use crate::components::copy_button::CopyButton;
use crate::error::AppError;
use crate::model::{coins_text, duration_text, human_bytes, human_megabytes, utc_date, utc_minute, Dashboard, History, NodeStatus, ONLINE_WINDOW_MS};
use leptos::prelude::*;
use crate::components::session::{load_failed, ToLogin};

/// The signed-in user's figures; `None` when nobody is signed in.
#[server(endpoint = "get_dashboard")]
pub async fn get_dashboard() -> Result<Option<Dashboard>, AppError> {
    use super::ssr;
    let Some(who) = ssr::session().await? else { return Ok(None) };
    crate::service::accounts::dashboard(&*ssr::state()?, &who).await.map(Some)
}

/// The last 30 days of the signed-in user; `None` when nobody is signed in.
#[server(endpoint = "get_history")]
pub async fn get_history() -> Result<Option<History>, AppError> {
    use super::ssr;
    let Some(who) = ssr::session().await? else { return Ok(None) };
    crate::service::accounts::history(&*ssr::state()?, &who, 30).await.map(Some)
}

/// The signed-in user's storage node and the network; `None` when nobody is signed in.
#[server(endpoint = "get_node_status")]
pub async fn get_node_status() -> Result<Option<NodeStatus>, AppError> {
    use super::ssr;
    let Some(who) = ssr::session().await? else { return Ok(None) };
    crate::service::network::node_status(&*ssr::state()?, who.user_id).await.map(Some)
}

#[component]
pub fn DashboardPage() -> impl IntoView {
    let data = Resource::new(|| (), |_| get_dashboard());
    let history = Resource::new(|| (), |_| get_history());
    let node = Resource::new(|| (), |_| get_node_status());
    view! {
        <section>
            <h1>"Dashboard"</h1>
            <Suspense fallback=|| view! { <p class="loading">"Loading your figures…"</p> }>
                <ErrorBoundary fallback=load_failed("The dashboard")>
                    {move || Suspend::new(async move {
                        let (found, past, held) = (data.await?, history.await?, node.await?);
                        Ok::<_, AppError>(match (found, past, held) {
                            (Some(d), Some(h), Some(n)) => view! { <Figures d=d.clone()/> <Network n/> <Charts d h/> }.into_any(),
                            _ => view! { <ToLogin/> }.into_any(),
                        })
                    })}
                </ErrorBoundary>
            </Suspense>
        </section>
    }
}

/// A label and a value of the figures grid.
fn figure(label: &'static str, value: String, id: &'static str) -> impl IntoView {
    view! {
        <div class="figure" data-figure=id>
            <dt>{label}</dt>
            <dd>{value}</dd>
        </div>
    }
}

/// `100% (12 of 12)`, or that there was none.
fn audit_score_text(n: &NodeStatus) -> String {
    match n.audit_score {
        Some(score) => format!("{:.0}% ({} of {})", score * 100.0, n.audits_passed, n.audits_total),
        None => "No audits yet".into(),
    }
}

/// What the account's storage node holds and earned, and the network's figures.
#[component]
fn Network(n: NodeStatus) -> impl IntoView {
    let node = if n.node.is_some() {
        view! {
            <dl class="figures">
                {figure("Held for the network", human_bytes(n.held_bytes), "held_bytes")}
                {figure("Copies held", n.placements.to_string(), "placements")}
                {figure("Audit score (30 days)", audit_score_text(&n), "audit_score")}
                {figure("Storage coins", coins_text(n.storage_coins), "storage_coins")}
                {figure("Uptime coins", coins_text(n.uptime_coins), "uptime_coins")}
            </dl>
        }
        .into_any()
    } else {
        view! {
            <p class="hint" data-figure="no_node">
                "None of your devices holds data for the network yet. Run a storage node "
                "(peervault node, see docs/NETWORK.md) to hold copies and earn storage coins "
                "for every audit it passes."
            </p>
        }
        .into_any()
    };
    view! {
        <section class="network">
            <h2>"Your storage node"</h2>
            {node}
            <h2>"Network"</h2>
            <dl class="figures">
                {figure("Nodes online", n.network.nodes_online.to_string(), "nodes_online")}
                {figure("Pledged by them", human_megabytes(n.network.pledged_mb), "network_pledge")}
                {figure("Stored on nodes", human_bytes(n.network.placed_bytes), "network_placed")}
            </dl>
        </section>
    }
}

#[component]
fn Figures(d: Dashboard) -> impl IntoView {
    let peer_id = d.peer_id.clone();
    view! {
        <dl class="figures">
            {figure("Username", d.username.clone(), "username")}
            <div class="figure wide" data-figure="peerId">
                <dt>"Peer ID"</dt>
                <dd class="peer-id">
                    <code>{d.peer_id.clone()}</code>
                    <CopyButton text=peer_id label="Copy peer ID"/>
                </dd>
            </div>
            {figure("Storage rented", human_megabytes(d.storage_rented_mb), "storage_rented")}
            {figure("Coins earned", coins_text(d.coins_earned), "coins_earned")}
            {figure("Bandwidth used", human_bytes(d.bandwidth_used), "bandwidth_used")}
            {figure("Data uploaded", human_bytes(d.data_uploaded), "data_uploaded")}
            {figure("Data downloaded", human_bytes(d.data_downloaded), "data_downloaded")}
            {figure("Space used", human_bytes(d.space_used), "space_used")}
            {figure("Uptime", duration_text(d.uptime_seconds as f64), "uptime")}
        </dl>
        <p class="hint">
            "Your Android device signs in with your username and this peer ID. "
            "Keep it private: anyone who has it can report as your device."
        </p>
    }
}

fn coins_unit(v: f64) -> String {
    coins_text(v)
}

fn seconds_unit(v: f64) -> String {
    duration_text(v)
}

fn bytes_unit(v: f64) -> String {
    human_bytes(v as i64)
}

#[component]
fn Charts(d: Dashboard, h: History) -> impl IntoView {
    let labels: Vec<String> = h.days.iter().map(|p| utc_date(p.day)).collect();
    let pick = |f: fn(&crate::model::DayPoint) -> f64| h.days.iter().map(f).collect::<Vec<f64>>();
    let coins = vec![Series { name: "Coins", class: "s-coins", values: pick(|p| p.coins) }];
    let uptime = vec![Series { name: "Uptime", class: "s-uptime", values: pick(|p| p.uptime_seconds as f64) }];
    let traffic = vec![
        Series { name: "Files uploaded", class: "s-files-up", values: pick(|p| p.files_up as f64) },
        Series { name: "Files downloaded", class: "s-files-down", values: pick(|p| p.files_down as f64) },
        Series { name: "Peer node in", class: "s-peer-in", values: pick(|p| p.peer_in as f64) },
        Series { name: "Peer node out", class: "s-peer-out", values: pick(|p| p.peer_out as f64) },
    ];
    let pledged_bytes = d.storage_rented_mb * 1024.0 * 1024.0;
    let caption = format!("{} used of {} pledged", human_bytes(d.space_used), human_megabytes(d.storage_rented_mb));
    let (status, online) = match d.last_heartbeat_at {
        None => ("No report from your device yet".to_string(), false),
        Some(at) => {
            let online = h.now - at <= ONLINE_WINDOW_MS;
            (format!("Last report {}", utc_minute(at)), online)
        }
    };
    view! {
        <section class="device" data-online=online.to_string()>
            <h2>"Device"</h2>
            <p>
                <span class=if online { "badge online" } else { "badge offline" }>{if online { "Online" } else { "Offline" }}</span>
                " " {status}
            </p>
            <UsageBar label="Storage" used=d.space_used as f64 total=pledged_bytes caption/>
        </section>
        <section class="charts">
            <h2>"Last 30 days"</h2>
            <BarChart title="Coins earned per day" labels=labels.clone() series=coins format=coins_unit/>
            <BarChart title="Uptime per day" labels=labels.clone() series=uptime format=seconds_unit/>
            <BarChart title="Traffic per day" labels series=traffic format=bytes_unit/>
        </section>
    }
}
