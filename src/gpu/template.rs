//! The tiny template step behind register-blocked kernels. A register block must be written
//! out as named scalars (a dynamically indexed array is demoted to scratch memory, and loops
//! too long for the driver to unroll leave exactly that), and the best block size differs
//! between CPU adapters (lavapipe: large) and GPUs (small). So a shader may contain:
//!
//! ```text
//! //@for i in 0..TM          repeat the lines up to the matching //@end for i = 0, 1, ...
//!     let a${i} = a[ao${i} + ka];
//! //@end
//! ```
//!
//! and `${expr}` anywhere, where `expr` is integer arithmetic (+ - * / %, parentheses) over
//! the template parameters and enclosing loop variables. `//@include NAME` expands the shared
//! snippet `src/kernels/include/NAME.wgsl` in place (with the same parameters and loop variables),
//! so a helper is written once for every shader. Shaders without markers pass through.

use crate::error::{Error, Result};
use std::collections::HashMap;

pub fn expand(src: &str, params: &[(&str, u32)]) -> Result<String> {
    let vars: HashMap<String, i64> = params
        .iter()
        .map(|(k, v)| (k.to_string(), *v as i64))
        .collect();
    let lines: Vec<&str> = src.lines().collect();
    let mut out = String::with_capacity(src.len() * 4);
    expand_block(&lines, &vars, &mut out, 0)?;
    Ok(out)
}

/// Snippets may include snippets, up to this depth (a cycle is an error, not a hang).
const MAX_INCLUDE_DEPTH: usize = 4;

fn expand_block(
    lines: &[&str],
    vars: &HashMap<String, i64>,
    out: &mut String,
    depth: usize,
) -> Result<()> {
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        if let Some(name) = trimmed.strip_prefix("//@include ") {
            let name = name.trim();
            let snippet = super::shaders::include(name)
                .ok_or_else(|| bad(format!("unknown include '{name}'")))?;
            if depth >= MAX_INCLUDE_DEPTH {
                return Err(bad(format!(
                    "includes nested deeper than {MAX_INCLUDE_DEPTH} at '{name}'"
                )));
            }
            let snippet_lines: Vec<&str> = snippet.lines().collect();
            expand_block(&snippet_lines, vars, out, depth + 1)?;
            i += 1;
            continue;
        }
        if let Some(head) = trimmed.strip_prefix("//@for ") {
            let end = matching_end(lines, i)?;
            let (var, range) = head
                .split_once(" in ")
                .ok_or_else(|| bad(format!("malformed loop '{trimmed}'")))?;
            let (lo, hi) = range
                .split_once("..")
                .ok_or_else(|| bad(format!("malformed range '{range}'")))?;
            let (lo, hi) = (eval(lo, vars)?, eval(hi, vars)?);
            for v in lo..hi {
                let mut inner = vars.clone();
                inner.insert(var.trim().to_string(), v);
                expand_block(&lines[i + 1..end], &inner, out, depth)?;
            }
            i = end + 1;
            continue;
        }
        if trimmed.starts_with("//@end") {
            return Err(bad("unmatched //@end".into()));
        }
        out.push_str(&substitute(line, vars)?);
        out.push('\n');
        i += 1;
    }
    Ok(())
}

fn matching_end(lines: &[&str], start: usize) -> Result<usize> {
    let mut depth = 0;
    for (k, l) in lines.iter().enumerate().skip(start) {
        let t = l.trim_start();
        if t.starts_with("//@for ") {
            depth += 1;
        } else if t.starts_with("//@end") {
            depth -= 1;
            if depth == 0 {
                return Ok(k);
            }
        }
    }
    Err(bad(format!("//@for at line {} has no //@end", start + 1)))
}

fn substitute(line: &str, vars: &HashMap<String, i64>) -> Result<String> {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(p) = rest.find("${") {
        out.push_str(&rest[..p]);
        let close = rest[p..]
            .find('}')
            .ok_or_else(|| bad(format!("unclosed ${{ in '{line}'")))?;
        out.push_str(&eval(&rest[p + 2..p + close], vars)?.to_string());
        rest = &rest[p + close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn bad(msg: String) -> Error {
    Error::Invalid(format!("shader template: {msg}"))
}

/// Integer expression evaluator: + - * / % and parentheses, identifiers from `vars`.
fn eval(expr: &str, vars: &HashMap<String, i64>) -> Result<i64> {
    let tokens: Vec<char> = expr.chars().filter(|c| !c.is_whitespace()).collect();
    let mut pos = 0;
    let v = parse_sum(&tokens, &mut pos, vars)?;
    if pos != tokens.len() {
        return Err(bad(format!("trailing input in '{expr}'")));
    }
    Ok(v)
}

fn parse_sum(t: &[char], pos: &mut usize, vars: &HashMap<String, i64>) -> Result<i64> {
    let mut v = parse_product(t, pos, vars)?;
    while *pos < t.len() && (t[*pos] == '+' || t[*pos] == '-') {
        let op = t[*pos];
        *pos += 1;
        let r = parse_product(t, pos, vars)?;
        v = if op == '+' { v + r } else { v - r };
    }
    Ok(v)
}

fn parse_product(t: &[char], pos: &mut usize, vars: &HashMap<String, i64>) -> Result<i64> {
    let mut v = parse_atom(t, pos, vars)?;
    while *pos < t.len() && matches!(t[*pos], '*' | '/' | '%') {
        let op = t[*pos];
        *pos += 1;
        let r = parse_atom(t, pos, vars)?;
        if op != '*' && r == 0 {
            return Err(bad("division by zero".into()));
        }
        v = match op {
            '*' => v * r,
            '/' => v / r,
            _ => v % r,
        };
    }
    Ok(v)
}

fn parse_atom(t: &[char], pos: &mut usize, vars: &HashMap<String, i64>) -> Result<i64> {
    let start = *pos;
    match t.get(*pos) {
        Some('(') => {
            *pos += 1;
            let v = parse_sum(t, pos, vars)?;
            if t.get(*pos) != Some(&')') {
                return Err(bad("missing ')'".into()));
            }
            *pos += 1;
            Ok(v)
        }
        Some(c) if c.is_ascii_digit() => {
            while *pos < t.len() && t[*pos].is_ascii_digit() {
                *pos += 1;
            }
            Ok(t[start..*pos]
                .iter()
                .collect::<String>()
                .parse()
                .expect("digits"))
        }
        Some(c) if c.is_ascii_alphabetic() || *c == '_' => {
            while *pos < t.len() && (t[*pos].is_ascii_alphanumeric() || t[*pos] == '_') {
                *pos += 1;
            }
            let name: String = t[start..*pos].iter().collect();
            vars.get(&name)
                .copied()
                .ok_or_else(|| bad(format!("unknown name '{name}'")))
        }
        _ => Err(bad(format!(
            "unexpected input at '{}'",
            t[start..].iter().collect::<String>()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loops_nest_and_substitute() {
        let src = "a\n//@for i in 0..N\n  x${i}\n//@for j in i..2\n  y${i*10+j}\n//@end\n//@end\nb ${N-1}";
        let out = expand(src, &[("N", 2)]).unwrap();
        assert_eq!(out, "a\n  x0\n  y0\n  y1\n  x1\n  y11\nb 1\n");
    }

    #[test]
    fn includes_expand_with_the_enclosing_variables() {
        let src = "a\n//@for j in 0..2\n//@include sigmoid\n//@end";
        let out = expand(src, &[]).unwrap();
        let snippet = crate::gpu::shaders::include("sigmoid").unwrap();
        assert_eq!(out, format!("a\n{snippet}{snippet}"));
        assert!(expand("//@include no_such_snippet", &[]).is_err());
    }

    #[test]
    fn errors_are_reported() {
        assert!(expand("//@for i in 0..3\nx", &[]).is_err());
        assert!(expand("${FOO}", &[]).is_err());
        assert!(expand("//@end", &[]).is_err());
        assert!(expand("${(1+2}", &[]).is_err());
    }
}
