//! How `bcfy-directory` prints each level: aligned tables for people, protobuf JSON for scripts.

use std::time::SystemTime;

use bcfy_proto::{
    Freshness, GetCountyResponse, GetFeedResponse, ListCountiesResponse, ListStatesResponse,
};

/// Left-aligned columns, two spaces apart; the last column is not padded.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len().saturating_sub(1);
        let mut text = String::new();
        for (i, cell) in cells.into_iter().enumerate() {
            if i == last {
                text.push_str(&cell);
            } else {
                text.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        text.trim_end().to_owned() + "\n"
    };
    let mut text = line(header.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        text.push_str(&line(row.clone()));
    }
    text
}

/// One line on how old the answer is, for standard error.
pub(crate) fn freshness(freshness: Option<&Freshness>) -> Option<String> {
    let freshness = freshness?;
    let fetched = freshness
        .fetched_at
        .and_then(|t| SystemTime::try_from(t).ok())
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .map(|age| {
            humantime::format_duration(std::time::Duration::from_secs(age.as_secs())).to_string()
        })
        .unwrap_or_else(|| "unknown".to_owned());
    Some(if freshness.stale {
        format!("(stale: fetched {fetched} ago; {})", freshness.stale_reason)
    } else if freshness.cache_hit {
        format!("(cached, fetched {fetched} ago)")
    } else {
        "(fetched now)".to_owned()
    })
}

/// `ID  CODE  NAME`.
pub(crate) fn states(answer: &ListStatesResponse) -> String {
    let rows: Vec<Vec<String>> = answer
        .states
        .iter()
        .map(|s| vec![s.id.to_string(), s.code.clone(), s.name.clone()])
        .collect();
    table(&["ID", "CODE", "NAME"], &rows)
}

/// `CTID  NAME`.
pub(crate) fn counties(answer: &ListCountiesResponse) -> String {
    let rows: Vec<Vec<String>> = answer
        .counties
        .iter()
        .map(|c| vec![c.id.to_string(), c.name.clone()])
        .collect();
    table(&["CTID", "NAME"], &rows)
}

/// The county's name, its systems, talkgroups and feeds.
pub(crate) fn county(answer: &GetCountyResponse) -> String {
    let name = answer.county.as_ref().map_or("", |c| c.name.as_str());
    let mut text = format!("{name}\n\nSystems\n");
    let systems: Vec<Vec<String>> = answer
        .systems
        .iter()
        .map(|s| vec![s.sid.to_string(), s.name.clone()])
        .collect();
    text.push_str(&table(&["SID", "NAME"], &systems));
    text.push_str("\nTalkgroups\n");
    let talkgroups: Vec<Vec<String>> = answer
        .talkgroups
        .iter()
        .map(|t| {
            vec![
                t.group_id.clone(),
                t.display.clone(),
                t.tag.clone(),
                t.descr.clone(),
            ]
        })
        .collect();
    text.push_str(&table(
        &["GROUP", "DISPLAY", "TAG", "DESCRIPTION"],
        &talkgroups,
    ));
    text.push_str("\nFeeds\n");
    let feeds: Vec<Vec<String>> = answer
        .feeds
        .iter()
        .map(|f| {
            vec![
                f.id.to_string(),
                if f.online { "online" } else { "offline" }.to_owned(),
                f.listeners.to_string(),
                f.genre.clone(),
                f.name.clone(),
            ]
        })
        .collect();
    text.push_str(&table(
        &["FEED", "STATUS", "LISTENERS", "GENRE", "NAME"],
        &feeds,
    ));
    text
}

/// One feed.
pub(crate) fn feed(answer: &GetFeedResponse) -> String {
    let Some(feed) = &answer.feed else {
        return String::new();
    };
    format!(
        "{}  {}\nstatus: {}\nlisteners: {}\ngenre: {}\n",
        feed.id,
        feed.name,
        if feed.online { "online" } else { "offline" },
        feed.listeners,
        feed.genre
    )
}
