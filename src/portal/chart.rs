//! Charts as server-rendered SVG: bars whose sizes are computed here, so
//! the page needs no script and no library to show them.

/// One bar, in the chart's own coordinates.
pub struct Bar {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    /// What the bar stands for, for a tooltip and screen readers: "30 Nov: 12".
    pub label: String,
}

/// A bar chart of one series over days.
pub struct Bars {
    pub title: String,
    pub width: u32,
    pub height: u32,
    pub bars: Vec<Bar>,
    /// The largest value, written as the axis shows it.
    pub top: String,
    /// The first and last day, under the axis.
    pub first: String,
    pub last: String,
}

pub const WIDTH: u32 = 300;
pub const HEIGHT: u32 = 100;

impl Bars {
    /// Bars for `values` (one per day, oldest first), scaled to the largest.
    pub fn new(
        title: String,
        values: &[(String, i64)],
        format: impl Fn(i64) -> String,
        first: String,
        last: String,
    ) -> Self {
        let max = values.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
        let n = values.len().max(1) as u32;
        let slot = WIDTH / n;
        let width = slot.saturating_sub(2).max(1);
        let bars = values
            .iter()
            .enumerate()
            .map(|(i, (day, v))| {
                let v = (*v).max(0);
                // Integer scaling: a bar is at least 1 unit tall when its value is not 0.
                let h = ((v as i128 * i128::from(HEIGHT)) / i128::from(max)) as u32;
                let h = if v > 0 { h.max(1) } else { 0 };
                Bar {
                    x: i as u32 * slot + 1,
                    y: HEIGHT - h,
                    width,
                    height: h,
                    label: format!("{day}: {}", format(v)),
                }
            })
            .collect();
        Bars {
            title,
            width: WIDTH,
            height: HEIGHT,
            bars,
            top: format(max),
            first,
            last,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_value() {
        let values = vec![("1".into(), 0), ("2".into(), 5), ("3".into(), 10)];
        let chart = Bars::new(
            "t".into(),
            &values,
            |v| v.to_string(),
            "a".into(),
            "b".into(),
        );
        let heights: Vec<u32> = chart.bars.iter().map(|b| b.height).collect();
        assert_eq!(heights, vec![0, 50, 100]);
        assert_eq!(chart.bars[2].y, 0);
        assert_eq!(chart.bars[1].x, 101);
        assert_eq!(chart.bars[1].label, "2: 5");
        assert_eq!(chart.top, "10");
    }
}
