//! A port of the column-block algorithm of Go's `text/tabwriter`, which kubectl uses for every table
//! (`get`: min width 6, padding 3) and for `describe` (min width 0, padding 2). Alignment must match
//! byte for byte because scripts cut kubectl's columns by position.

/// The layout of one tab writer: Go's `minwidth` and `padding` (the pad character is a space and
/// cells are left-aligned, as kubectl configures it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub min_width: usize,
    pub padding: usize,
}

/// `kubectl get`'s printers (`printers.GetNewTabWriter`: 6, 4, 3, ' ', 0).
pub const GET: Layout = Layout { min_width: 6, padding: 3 };
/// `kubectl describe`'s prefix writer (`tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)`).
pub const DESCRIBE: Layout = Layout { min_width: 0, padding: 2 };

/// Formats text whose cells are separated by `\t` and whose lines end with `\n`, aligning each block
/// of consecutive lines that share a column, exactly as Go's tabwriter does at `Flush`. The last
/// cell of a line is not part of any column and is never padded.
pub fn format(text: &str, layout: Layout) -> String {
    format_remembering(text, layout, &mut None)
}

/// [`format()`] with the `RememberWidths` flag of the tab writer kubectl uses (`liggitt/tabwriter`):
/// each column is at least as wide as it was in earlier flushes (`remembered`, by column index,
/// updated here), so the rows `get -w` prints one flush at a time stay aligned with the header.
pub fn format_remembering(text: &str, layout: Layout, remembered: &mut Option<Vec<usize>>) -> String {
    let lines: Vec<Vec<&str>> = text.split_terminator('\n').map(|l| l.split('\t').collect()).collect();
    let mut out = String::with_capacity(text.len() * 2);
    let mut widths = Vec::new();
    format_block(&lines, 0, lines.len(), &mut widths, layout, remembered, &mut out);
    if !text.is_empty() && !text.ends_with('\n') {
        // Go keeps an unterminated last line buffered until Flush, then writes it without a newline.
        out.pop();
    }
    out
}

fn cell_width(cell: &str) -> usize {
    cell.chars().count()
}

fn format_block(
    lines: &[Vec<&str>],
    line0: usize,
    line1: usize,
    widths: &mut Vec<usize>,
    layout: Layout,
    remembered: &mut Option<Vec<usize>>,
    out: &mut String,
) {
    let column = widths.len();
    let mut start = line0;
    let mut this = line0;
    while this < line1 {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        write_lines(lines, start, this, widths, out);
        start = this;
        let mut width = layout.min_width;
        while this < line1 && column + 1 < lines[this].len() {
            width = width.max(cell_width(lines[this][column]) + layout.padding);
            this += 1;
        }
        if let Some(max) = remembered.as_mut() {
            if max.len() < column {
                max.resize(column, 0);
            }
            match max.get_mut(column) {
                Some(m) if *m > width => width = *m,
                Some(m) => *m = width,
                None => max.push(width),
            }
        }
        widths.push(width);
        format_block(lines, start, this, widths, layout, remembered, out);
        widths.pop();
        start = this;
    }
    write_lines(lines, start, line1, widths, out);
}

fn write_lines(lines: &[Vec<&str>], from: usize, to: usize, widths: &[usize], out: &mut String) {
    for line in &lines[from..to] {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j < widths.len() && j + 1 < line.len() {
                let pad = widths[j].saturating_sub(cell_width(cell));
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_like_go_tabwriter() {
        let cases: &[(&str, Layout, &str)] = &[
            (
                "NAME\tREADY\tSTATUS\nweb-7c5ddbdf54-x2x9k\t1/1\tRunning\n",
                GET,
                "NAME                   READY   STATUS\nweb-7c5ddbdf54-x2x9k   1/1     Running\n",
            ),
            // Minimum width 6 applies to short columns.
            ("A\tB\nx\ty\n", GET, "A     B\nx     y\n"),
            // A line without tabs ends the column block: the next block aligns on its own.
            (
                "Name:\tweb\nConditions:\n  Type\tStatus\n  Available\tTrue\n",
                DESCRIBE,
                "Name:  web\nConditions:\n  Type       Status\n  Available  True\n",
            ),
            // Lines with more cells than their neighbours open a nested block.
            ("a\tb\tc\naaaa\tb\n", DESCRIBE, "a     b  c\naaaa  b\n"),
            ("", GET, ""),
        ];
        for (input, layout, want) in cases {
            assert_eq!(format(input, *layout), *want, "input {input:?}");
        }
    }

    #[test]
    fn remembers_widths_across_flushes_like_kubectl_watch() {
        let mut remembered = Some(Vec::new());
        let header = format_remembering("NAME\tREADY\tAGE\nweb\t0/2\t5s\n", GET, &mut remembered);
        assert_eq!(header, "NAME   READY   AGE\nweb    0/2     5s\n");
        // A later row alone would be laid out narrower; the remembered widths keep it aligned.
        assert_eq!(format("web\t0/3\t6s\n", GET), "web   0/3   6s\n");
        assert_eq!(format_remembering("web\t0/3\t6s\n", GET, &mut remembered), "web    0/3     6s\n");
        // A wider cell widens its column for the rows after it.
        let wide = format_remembering("a-much-longer-name\t1/1\t7s\n", GET, &mut remembered);
        assert_eq!(wide, "a-much-longer-name   1/1     7s\n");
        assert_eq!(format_remembering("web\t1/1\t8s\n", GET, &mut remembered), "web                  1/1     8s\n");
    }
}
