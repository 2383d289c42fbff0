//! `first_value(x ORDER BY …)` and `last_value(x ORDER BY …)` with a grouped accumulator
//! that compares its ordering keys as bytes.
//!
//! The views take a parcel's last status and its pickup's region with these ordered
//! aggregates, over every scan of the lake grouped by parcel. DataFusion 55's grouped
//! accumulator for them keeps each group's ordering keys as `Vec<ScalarValue>` (a string
//! key is a heap `String` per group), builds a `ScalarValue` per group and batch to
//! compare, and walks every group of the query for every batch; on the 1M-order bench
//! lake that was about half the CPU of `carrier_transit_time`. Here the ordering columns
//! of a batch are turned into Arrow's row format once (bytes that sort as the `ORDER BY`
//! does, directions and null placement included), a group keeps the bytes of its best
//! row, and a row wins by a byte comparison. The value is not copied out of its batch:
//! a group points at the row that won, the batches it points into are kept, and they
//! are packed into one array when they hold more than twice the groups' rows.
//!
//! Everything else (the name, types, state layout, ungrouped accumulator, reversal,
//! `IGNORE NULLS`) is DataFusion's own function's: the engine registers these under the
//! same names, and the SQL does not change.

use std::cmp::Ordering;
use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, BooleanArray};
use arrow::compute::{interleave, prep_null_mask_filter, SortOptions};
use arrow::datatypes::{DataType, FieldRef};
use arrow::row::{RowConverter, SortField};
use datafusion::common::{internal_err, Result};
use datafusion::execution::context::SessionContext;
use datafusion::functions_aggregate::first_last::{first_value_udaf, last_value_udaf};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator, ReversedUDAF, Signature};

/// Registers the two functions in `ctx`, in place of DataFusion's.
pub fn register(ctx: &SessionContext) {
    for pick in [Pick::First, Pick::Last] {
        ctx.register_udaf(OrderedFirstLast::new(pick).into());
    }
}

/// Which end of the ordering an aggregate keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Pick {
    /// The row that sorts first (`first_value`).
    First,
    /// The row that sorts last (`last_value`).
    Last,
}

impl Pick {
    /// Whether a row with ordering key `candidate` replaces the kept `best`. Ties keep the
    /// row seen first, as DataFusion's own accumulator does.
    fn replaces(self, candidate: &[u8], best: &[u8]) -> bool {
        let wanted = match self {
            Pick::First => Ordering::Less,
            Pick::Last => Ordering::Greater,
        };
        candidate.cmp(best) == wanted
    }

    fn other(self) -> Self {
        match self {
            Pick::First => Pick::Last,
            Pick::Last => Pick::First,
        }
    }
}

/// DataFusion's `first_value` or `last_value` (`inner`), with [`OrderedGroups`] as its
/// grouped accumulator when it has an `ORDER BY`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct OrderedFirstLast {
    pick: Pick,
    inner: AggregateUDF,
}

impl OrderedFirstLast {
    fn new(pick: Pick) -> Self {
        let inner = match pick {
            Pick::First => first_value_udaf(),
            Pick::Last => last_value_udaf(),
        };
        OrderedFirstLast { pick, inner: inner.as_ref().clone() }
    }
}

impl AggregateUDFImpl for OrderedFirstLast {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field(&self, arg_fields: &[FieldRef]) -> Result<FieldRef> {
        self.inner.inner().return_field(arg_fields)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.inner.accumulator(args)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.inner.state_fields(args)
    }

    /// With an `ORDER BY` whose types Arrow's row format can encode (any but a few
    /// nested ones); without one, any row will do and DataFusion's ungrouped
    /// accumulator keeps the first it sees.
    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        !args.order_bys.is_empty() && ordering(&args).is_ok_and(|ordering| RowConverter::new(sort_fields(&ordering)).is_ok())
    }

    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(OrderedGroups::try_new(self.pick, args.return_field.data_type(), &ordering(&args)?, args.ignore_nulls)?))
    }

    fn with_beneficial_ordering(self: Arc<Self>, beneficial_ordering: bool) -> Result<Option<Arc<dyn AggregateUDFImpl>>> {
        let Some(inner) = self.inner.clone().with_beneficial_ordering(beneficial_ordering)? else {
            return Ok(None);
        };
        Ok(Some(Arc::new(OrderedFirstLast { pick: self.pick, inner })))
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        self.inner.order_sensitivity()
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::Reversed(Arc::new(OrderedFirstLast::new(self.pick.other()).into()))
    }

    fn supports_null_handling_clause(&self) -> bool {
        self.inner.supports_null_handling_clause()
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

/// The types and directions of an aggregate's `ORDER BY`.
fn ordering(args: &AccumulatorArgs) -> Result<Vec<(DataType, SortOptions)>> {
    args.order_bys.iter().map(|sort| Ok((sort.expr.data_type(args.schema)?, sort.options))).collect()
}

fn sort_fields(ordering: &[(DataType, SortOptions)]) -> Vec<SortField> {
    ordering.iter().map(|(data_type, options)| SortField::new_with_options(data_type.clone(), *options)).collect()
}

/// The flags with NULL as false: a row passes a FILTER only when it is true.
fn only_true(flags: &BooleanArray) -> BooleanArray {
    if flags.null_count() > 0 {
        prep_null_mask_filter(flags)
    } else {
        flags.clone()
    }
}

/// Where a group's value is: a row of one of the kept value arrays.
#[derive(Debug, Clone, Copy)]
struct ValueAt {
    array: usize,
    row: usize,
}

/// The value array every group without a value points at: one null.
const NO_VALUE: ValueAt = ValueAt { array: 0, row: 0 };

/// The grouped accumulator. Its state (for a two-phase aggregation) is DataFusion's:
/// the value, the ordering columns, and whether the group has a value.
#[derive(Debug)]
struct OrderedGroups {
    pick: Pick,
    ignore_nulls: bool,
    converter: RowConverter,
    /// Per group, the ordering key of its value in row format; empty before it has one
    /// (a row is never empty).
    keys: Vec<Vec<u8>>,
    /// Bytes the keys hold, for [`GroupsAccumulator::size`].
    key_bytes: usize,
    /// Per group, where its value is in `arrays`.
    values: Vec<ValueAt>,
    /// The value arrays groups point into; the first is a single null.
    arrays: Vec<ArrayRef>,
    /// Rows and bytes of `arrays`.
    kept_rows: usize,
    kept_bytes: usize,
    /// The ordering key of a group without a value, for [`GroupsAccumulator::state`].
    unset_key: Vec<u8>,
}

impl OrderedGroups {
    fn try_new(pick: Pick, value_type: &DataType, ordering: &[(DataType, SortOptions)], ignore_nulls: bool) -> Result<Self> {
        let null_ordering: Vec<ArrayRef> = ordering.iter().map(|(data_type, _)| new_null_array(data_type, 1)).collect();
        let converter = RowConverter::new(sort_fields(ordering))?;
        let unset_key = converter.convert_columns(&null_ordering)?.row(0).as_ref().to_vec();
        let no_value = new_null_array(value_type, 1);
        Ok(OrderedGroups {
            pick,
            ignore_nulls,
            converter,
            keys: Vec::new(),
            key_bytes: 0,
            values: Vec::new(),
            kept_rows: no_value.len(),
            kept_bytes: no_value.get_array_memory_size(),
            arrays: vec![no_value],
            unset_key,
        })
    }

    /// Offers each row whose `candidates` flag is set (all rows when none) to its group.
    fn offer(
        &mut self,
        value: &ArrayRef,
        ordering: &[ArrayRef],
        group_indices: &[usize],
        candidates: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.keys.resize_with(total_num_groups, Vec::new);
        self.values.resize(total_num_groups, NO_VALUE);
        let rows = self.converter.convert_columns(ordering)?;
        let array = self.arrays.len();
        let mut taken = false;
        for (row, &group) in group_indices.iter().enumerate() {
            if candidates.is_some_and(|flags| !flags.value(row)) || (self.ignore_nulls && value.is_null(row)) {
                continue;
            }
            let candidate = rows.row(row);
            let best = &mut self.keys[group];
            if best.is_empty() || self.pick.replaces(candidate.as_ref(), best) {
                let capacity = best.capacity();
                best.clear();
                best.extend_from_slice(candidate.as_ref());
                self.key_bytes += best.capacity() - capacity;
                self.values[group] = ValueAt { array, row };
                taken = true;
            }
        }
        if taken {
            self.kept_rows += value.len();
            self.kept_bytes += value.get_array_memory_size();
            self.arrays.push(Arc::clone(value));
            if self.kept_rows > 2 * self.values.len() + 8192 {
                self.pack()?;
            }
        }
        Ok(())
    }

    /// Copies the groups' values into one array and lets the batches they came from go.
    fn pack(&mut self) -> Result<()> {
        let packed = self.gather(&self.values)?;
        let no_value = Arc::clone(&self.arrays[0]);
        self.kept_rows = no_value.len() + packed.len();
        self.kept_bytes = no_value.get_array_memory_size() + packed.get_array_memory_size();
        self.arrays = vec![no_value, packed];
        for (row, at) in self.values.iter_mut().enumerate() {
            *at = ValueAt { array: 1, row };
        }
        Ok(())
    }

    fn gather(&self, values: &[ValueAt]) -> Result<ArrayRef> {
        let arrays: Vec<&dyn Array> = self.arrays.iter().map(|array| array.as_ref()).collect();
        let indices: Vec<(usize, usize)> = values.iter().map(|at| (at.array, at.row)).collect();
        Ok(interleave(&arrays, &indices)?)
    }

    /// Takes the groups `emit_to` names: their values, and their keys (empty: no value).
    fn take(&mut self, emit_to: EmitTo) -> Result<(ArrayRef, Vec<Vec<u8>>)> {
        let values = emit_to.take_needed(&mut self.values);
        let keys = emit_to.take_needed(&mut self.keys);
        let taken = self.gather(&values)?;
        self.key_bytes = self.keys.iter().map(Vec::capacity).sum();
        if self.values.is_empty() {
            self.arrays.truncate(1);
            self.kept_rows = self.arrays[0].len();
            self.kept_bytes = self.arrays[0].get_array_memory_size();
        }
        Ok((taken, keys))
    }
}

impl GroupsAccumulator for OrderedGroups {
    fn update_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], opt_filter: Option<&BooleanArray>, total_num_groups: usize) -> Result<()> {
        let [value, ordering @ ..] = values else {
            return internal_err!("first_value/last_value without arguments");
        };
        self.offer(value, ordering, group_indices, opt_filter.map(only_true).as_ref(), total_num_groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        Ok(self.take(emit_to)?.0)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let (value, keys) = self.take(emit_to)?;
        let parser = self.converter.parser();
        let rows = keys.iter().map(|key| parser.parse(if key.is_empty() { &self.unset_key } else { key }));
        let mut state = vec![value];
        state.extend(self.converter.convert_rows(rows)?);
        state.push(Arc::new(keys.iter().map(|key| Some(!key.is_empty())).collect::<BooleanArray>()));
        Ok(state)
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        let [value, ordering @ .., is_set] = values else {
            return internal_err!("first_value/last_value state of {} columns", values.len());
        };
        let Some(is_set) = is_set.as_any().downcast_ref::<BooleanArray>() else {
            return internal_err!("first_value/last_value state flag is {}", is_set.data_type());
        };
        self.offer(value, ordering, group_indices, Some(&only_true(is_set)), total_num_groups)
    }

    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        let Some(first) = values.first() else {
            return internal_err!("first_value/last_value without arguments");
        };
        let is_set = match opt_filter {
            Some(filter) => only_true(filter),
            None => BooleanArray::from(vec![true; first.len()]),
        };
        let mut state = values.to_vec();
        state.push(Arc::new(is_set));
        Ok(state)
    }

    fn size(&self) -> usize {
        self.key_bytes + self.keys.capacity() * size_of::<Vec<u8>>() + self.values.capacity() * size_of::<ValueAt>() + self.kept_bytes + self.converter.size()
    }
}

#[cfg(test)]
mod tests {
    use std::any::Any;

    use arrow::array::{AsArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{Field, Schema, TimeUnit};
    use arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::execution::FunctionRegistry;
    use datafusion::prelude::SessionConfig;
    use rand::{Rng, SeedableRng};

    use super::*;

    fn strings(values: &[Option<&str>]) -> ArrayRef {
        Arc::new(StringArray::from(values.to_vec()))
    }

    fn times(values: &[Option<i64>]) -> ArrayRef {
        Arc::new(Int64Array::from(values.to_vec()))
    }

    fn accumulator(pick: Pick, ordering: &[SortOptions], ignore_nulls: bool) -> OrderedGroups {
        let ordering: Vec<(DataType, SortOptions)> = ordering.iter().map(|options| (DataType::Int64, *options)).collect();
        OrderedGroups::try_new(pick, &DataType::Utf8, &ordering, ignore_nulls).expect("supported types")
    }

    fn values_of(array: &ArrayRef) -> Vec<Option<String>> {
        array.as_string::<i32>().iter().map(|v| v.map(str::to_owned)).collect()
    }

    const ASC: SortOptions = SortOptions { descending: false, nulls_first: false };
    const DESC_NULLS_FIRST: SortOptions = SortOptions { descending: true, nulls_first: true };

    /// Rows (group, value, ordering key) in one batch, and each group's expected value.
    #[test]
    fn picks_by_the_ordering_with_ties_to_the_row_seen_first() {
        struct Case {
            name: &'static str,
            pick: Pick,
            options: SortOptions,
            ignore_nulls: bool,
            rows: Vec<(usize, Option<&'static str>, Option<i64>)>,
            expected: Vec<Option<&'static str>>,
        }
        let cases = [
            Case {
                name: "first by ascending key",
                pick: Pick::First,
                options: ASC,
                ignore_nulls: false,
                rows: vec![(0, Some("b"), Some(2)), (0, Some("a"), Some(1)), (1, Some("c"), Some(5)), (0, Some("z"), Some(3))],
                expected: vec![Some("a"), Some("c")],
            },
            Case {
                name: "last by ascending key",
                pick: Pick::Last,
                options: ASC,
                ignore_nulls: false,
                rows: vec![(0, Some("b"), Some(2)), (0, Some("a"), Some(1)), (0, Some("z"), Some(3))],
                expected: vec![Some("z")],
            },
            Case {
                name: "a tie keeps the row seen first",
                pick: Pick::First,
                options: ASC,
                ignore_nulls: false,
                rows: vec![(0, Some("x"), Some(1)), (0, Some("y"), Some(1))],
                expected: vec![Some("x")],
            },
            Case {
                name: "nulls last: a NULL key loses to any other",
                pick: Pick::First,
                options: ASC,
                ignore_nulls: false,
                rows: vec![(0, Some("null key"), None), (0, Some("nine"), Some(9))],
                expected: vec![Some("nine")],
            },
            Case {
                name: "descending, nulls first: a NULL key comes first",
                pick: Pick::First,
                options: DESC_NULLS_FIRST,
                ignore_nulls: false,
                rows: vec![(0, Some("nine"), Some(9)), (0, Some("null key"), None), (1, Some("one"), Some(1)), (1, Some("nine"), Some(9))],
                expected: vec![Some("null key"), Some("nine")],
            },
            Case {
                name: "a NULL value is a value unless nulls are ignored",
                pick: Pick::First,
                options: ASC,
                ignore_nulls: false,
                rows: vec![(0, None, Some(1)), (0, Some("two"), Some(2))],
                expected: vec![None],
            },
            Case {
                name: "IGNORE NULLS skips NULL values",
                pick: Pick::First,
                options: ASC,
                ignore_nulls: true,
                rows: vec![(0, None, Some(1)), (0, Some("two"), Some(2))],
                expected: vec![Some("two")],
            },
            Case {
                name: "a group without rows is NULL",
                pick: Pick::Last,
                options: ASC,
                ignore_nulls: false,
                rows: vec![(1, Some("one"), Some(1))],
                expected: vec![None, Some("one")],
            },
        ];
        for case in cases {
            let mut groups = accumulator(case.pick, &[case.options], case.ignore_nulls);
            let group_indices: Vec<usize> = case.rows.iter().map(|r| r.0).collect();
            let values = strings(&case.rows.iter().map(|r| r.1).collect::<Vec<_>>());
            let keys = times(&case.rows.iter().map(|r| r.2).collect::<Vec<_>>());
            groups.update_batch(&[values, keys], &group_indices, None, case.expected.len()).expect("update");
            let got = values_of(&groups.evaluate(EmitTo::All).expect("evaluate"));
            let expected: Vec<Option<String>> = case.expected.iter().map(|v| v.map(str::to_owned)).collect();
            assert_eq!(got, expected, "{}", case.name);
        }
    }

    #[test]
    fn a_filter_passes_only_true_rows() {
        let mut groups = accumulator(Pick::First, &[ASC], false);
        let values = strings(&[Some("filtered out"), Some("null filter"), Some("kept")]);
        let keys = times(&[Some(1), Some(2), Some(3)]);
        let filter = BooleanArray::from(vec![Some(false), None, Some(true)]);
        groups.update_batch(&[values, keys], &[0, 0, 0], Some(&filter), 1).expect("update");
        assert_eq!(values_of(&groups.evaluate(EmitTo::All).expect("evaluate")), vec![Some("kept".to_owned())]);
    }

    /// Two partial accumulators' states merged into a third give what one accumulator
    /// over all rows gives, and so does the state of rows that skipped the partial step.
    #[test]
    fn state_merges_and_skipped_partials_agree_with_one_pass() {
        let (a_values, a_keys) = (strings(&[Some("a3"), Some("a1"), None]), times(&[Some(3), Some(1), Some(7)]));
        let (b_values, b_keys) = (strings(&[Some("b2"), Some("b0")]), times(&[Some(2), Some(0)]));
        let mut one_pass = accumulator(Pick::First, &[ASC], false);
        one_pass.update_batch(&[a_values.clone(), a_keys.clone()], &[0, 0, 1], None, 2).expect("update");
        one_pass.update_batch(&[b_values.clone(), b_keys.clone()], &[1, 0], None, 2).expect("update");

        let mut merged = accumulator(Pick::First, &[ASC], false);
        let mut partial_a = accumulator(Pick::First, &[ASC], false);
        partial_a.update_batch(&[a_values, a_keys], &[0, 0, 1], None, 2).expect("update");
        merged.merge_batch(&partial_a.state(EmitTo::All).expect("state"), &[0, 1], 2).expect("merge");
        let skipped = merged.convert_to_state(&[b_values, b_keys], None).expect("convert");
        merged.merge_batch(&skipped, &[1, 0], 2).expect("merge");

        let expected = vec![Some("b0".to_owned()), Some("b2".to_owned())];
        assert_eq!(values_of(&one_pass.evaluate(EmitTo::All).expect("evaluate")), expected);
        assert_eq!(values_of(&merged.evaluate(EmitTo::All).expect("evaluate")), expected);
    }

    #[test]
    fn emitting_the_first_groups_keeps_the_rest() {
        let mut groups = accumulator(Pick::Last, &[ASC], false);
        groups.update_batch(&[strings(&[Some("g0"), Some("g1"), Some("g2")]), times(&[Some(1), Some(1), Some(1)])], &[0, 1, 2], None, 3).expect("update");
        assert_eq!(values_of(&groups.evaluate(EmitTo::First(2)).expect("evaluate")), vec![Some("g0".to_owned()), Some("g1".to_owned())]);
        groups.update_batch(&[strings(&[Some("new g0")]), times(&[Some(0)])], &[1], None, 2).expect("update");
        assert_eq!(values_of(&groups.evaluate(EmitTo::All).expect("evaluate")), vec![Some("g2".to_owned()), Some("new g0".to_owned())]);
    }

    #[test]
    fn packing_the_kept_batches_keeps_every_value() {
        let mut groups = accumulator(Pick::Last, &[ASC], false);
        // One row per group and batch, each later than the last: every batch is kept
        // until they hold more than twice the groups' rows plus a batch.
        for round in 0..40_i64 {
            let names: Vec<String> = (0..1000).map(|g| format!("g{g} r{round}")).collect();
            let values: ArrayRef = Arc::new(StringArray::from_iter_values(&names));
            groups.update_batch(&[values, times(&vec![Some(round); 1000])], &(0..1000).collect::<Vec<_>>(), None, 1000).expect("update");
        }
        assert!(groups.arrays.len() < 40, "the kept batches were packed");
        let got = values_of(&groups.evaluate(EmitTo::All).expect("evaluate"));
        assert_eq!(got[0].as_deref(), Some("g0 r39"));
        assert_eq!(got[999].as_deref(), Some("g999 r39"));
    }

    /// Random rows with many ties in time, through whole plans (partial and final
    /// aggregates, repartitioned, with and without the partial step skipped): the same
    /// results as DataFusion's own functions.
    #[tokio::test]
    async fn queries_give_what_datafusions_functions_give() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("g", DataType::Utf8, false),
            Field::new("t", DataType::Timestamp(TimeUnit::Microsecond, None), true),
            Field::new("id", DataType::Utf8, false),
            Field::new("v", DataType::Utf8, true),
            Field::new("status", DataType::Utf8, false),
        ]));
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut batches = Vec::new();
        for batch in 0..24 {
            let rows = 400;
            let g: Vec<String> = (0..rows).map(|_| format!("g{}", rng.random_range(0..300))).collect();
            let t: Vec<Option<i64>> = (0..rows).map(|_| rng.random_bool(0.95).then(|| rng.random_range(0..20))).collect();
            let id: Vec<String> = (0..rows).map(|row| format!("e{batch:02}-{row:03}")).collect();
            let v: Vec<Option<String>> = (0..rows).map(|_| rng.random_bool(0.9).then(|| format!("v{}", rng.random_range(0..50)))).collect();
            let status: Vec<&str> = (0..rows).map(|_| if rng.random_bool(0.3) { "in_transit" } else { "other" }).collect();
            let columns: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from_iter_values(&g)),
                Arc::new(TimestampMicrosecondArray::from(t)),
                Arc::new(StringArray::from_iter_values(&id)),
                Arc::new(StringArray::from(v)),
                Arc::new(StringArray::from(status)),
            ];
            batches.push(RecordBatch::try_new(schema.clone(), columns).expect("columns match"));
        }
        let partitions: Vec<Vec<RecordBatch>> = batches.chunks(6).map(<[RecordBatch]>::to_vec).collect();
        let query = "SELECT g, count(*) AS n,
                last_value(status ORDER BY t, id) AS last_status,
                first_value(v ORDER BY t, v NULLS LAST) FILTER (WHERE status = 'in_transit') AS first_in_transit,
                first_value(v ORDER BY t DESC NULLS FIRST, id) AS latest_or_untimed,
                last_value(v ORDER BY t, id) IGNORE NULLS AS last_known
            FROM data GROUP BY g ORDER BY g";
        for skip_partial in [false, true] {
            let mut results = Vec::new();
            for ours in [false, true] {
                let mut config = SessionConfig::new().with_target_partitions(3).with_batch_size(256);
                if skip_partial {
                    config.options_mut().execution.skip_partial_aggregation_probe_ratio_threshold = 0.0;
                    config.options_mut().execution.skip_partial_aggregation_probe_rows_threshold = 1;
                }
                let ctx = SessionContext::new_with_config(config);
                if ours {
                    register(&ctx);
                    let function = ctx.udaf("first_value").expect("registered");
                    assert!((function.inner().as_ref() as &dyn Any).is::<OrderedFirstLast>());
                }
                ctx.register_table("data", Arc::new(MemTable::try_new(schema.clone(), partitions.clone()).expect("table"))).expect("register");
                let rows = ctx.sql(query).await.expect("plans").collect().await.expect("runs");
                results.push(pretty_format_batches(&rows).expect("prints").to_string());
            }
            assert!(results[0].lines().count() > 300, "every group is there");
            assert_eq!(results[0], results[1], "skip_partial: {skip_partial}");
        }
    }
}
