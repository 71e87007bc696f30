//! The one table `bench/run` prints: each figure beside its peer, the ratio and the verdict.

#[derive(Default)]
pub(crate) struct Table {
    rows: Vec<[String; 6]>,
}

impl Table {
    pub(crate) fn row(
        &mut self,
        what: &str,
        ours: String,
        peer: String,
        ratio: String,
        target: &str,
        met: Option<bool>,
    ) {
        let met = match met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "",
        };
        self.rows
            .push([what.into(), ours, peer, ratio, target.into(), met.into()]);
    }

    pub(crate) fn print(&self) {
        println!("| benchmark | ours | peer | ratio | target | |");
        println!("|---|---|---|---|---|---|");
        for r in &self.rows {
            println!(
                "| {} | {} | {} | {} | {} | {} |",
                r[0], r[1], r[2], r[3], r[4], r[5]
            );
        }
    }
}

pub(crate) fn time_text(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

pub(crate) fn opt_time(ns: Option<f64>) -> String {
    ns.map_or_else(|| "n/a".into(), time_text)
}
