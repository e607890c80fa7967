//! The plain tables of `list` and `image list`: a header line, each column as wide as its
//! widest cell (a 63-character container name, a 128-character alias), two spaces between
//! columns, the last one unpadded and no trailing blanks.

/// `header` and `rows` as aligned lines, each ending in a newline.
pub fn render(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let cells: Vec<Vec<String>> = std::iter::once(header.iter().map(|h| h.to_string()).collect())
        .chain(rows)
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            cells
                .iter()
                .map(|l| l.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for line in &cells {
        let mut l = String::new();
        for (i, cell) in line.iter().enumerate() {
            l.push_str(cell);
            if i + 1 < line.len() {
                let pad = widths[i].saturating_sub(cell.chars().count()) + 2;
                l.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let out = super::render(
            &["A", "BB", "C"],
            [
                vec!["long-cell".into(), "x".into(), "last".into()],
                vec!["y".into(), "".into(), "".into()],
            ],
        );
        assert_eq!(out, "A          BB  C\nlong-cell  x   last\ny\n");
    }
}
