//! The effectiveness–cost Pareto front: a configuration is on it when no other configuration
//! is at least as effective for at most the cost and strictly better in one of the two.

/// For points `(cost, effectiveness)`, whether each is on the front (lower cost and higher
/// effectiveness are better). Points with a NaN coordinate are never on it; equal points are
/// both on it.
pub fn front(points: &[(f64, f64)]) -> Vec<bool> {
    points
        .iter()
        .map(|&(cost, effect)| {
            !cost.is_nan()
                && !effect.is_nan()
                && !points
                    .iter()
                    .any(|&(c, e)| dominates((c, e), (cost, effect)))
        })
        .collect()
}

/// Whether `a` dominates `b`.
pub fn dominates(a: (f64, f64), b: (f64, f64)) -> bool {
    a.0 <= b.0 && a.1 >= b.1 && (a.0 < b.0 || a.1 > b.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_front_is_exactly_the_non_dominated_points() {
        let points = [
            (1.0, 10.0), // cheapest
            (2.0, 30.0), // better for more
            (3.0, 20.0), // dominated by (2, 30)
            (4.0, 50.0), // best
            (4.0, 40.0), // dominated by (4, 50): same cost, less effective
            (2.0, 30.0), // a tie with a front point stays on the front
            (f64::NAN, 99.0),
        ];
        assert_eq!(
            front(&points),
            [true, true, false, true, false, true, false]
        );
    }

    #[test]
    fn front_points_never_dominate_each_other() {
        // A deterministic pseudo-random cloud.
        let mut x: u64 = 12345;
        let mut next = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as f64 / (1u64 << 31) as f64
        };
        let points: Vec<(f64, f64)> = (0..200).map(|_| (next(), next())).collect();
        let on = front(&points);
        let front_points: Vec<(f64, f64)> = points
            .iter()
            .zip(&on)
            .filter(|(_, on)| **on)
            .map(|(p, _)| *p)
            .collect();
        assert!(!front_points.is_empty());
        for a in &front_points {
            for b in &front_points {
                assert!(!dominates(*a, *b));
            }
        }
        for (p, on) in points.iter().zip(&on) {
            if !on {
                assert!(front_points.iter().any(|f| dominates(*f, *p)));
            }
        }
    }
}
