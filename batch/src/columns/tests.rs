use aimass_engine::TensorSpec;

use super::*;

fn header(names: &[&str]) -> Header {
    Header::new(names.iter().map(|s| (*s).to_owned()).collect()).unwrap()
}

fn input(name: &str, datatype: DataType, shape: &[i64]) -> TensorSpec {
    TensorSpec {
        name: name.to_owned(),
        datatype,
        shape: shape.to_vec(),
    }
}

fn signature(inputs: Vec<TensorSpec>) -> Signature {
    Signature {
        inputs,
        outputs: Vec::new(),
        on_request: 0,
    }
}

fn columns_of(layout: &Layout) -> Vec<(String, Vec<usize>)> {
    layout
        .iter()
        .map(|l| (l.name.clone(), l.columns.clone()))
        .collect()
}

#[test]
fn layouts_are_declared_or_inferred() {
    let wide = signature(vec![input("features", DataType::Fp32, &[-1, 3])]);
    let named = signature(vec![
        input("amount", DataType::Fp32, &[-1, 1]),
        input("country", DataType::Bytes, &[-1]),
    ]);
    let h = header(&["id", "a", "b", "c", "is_fraud"]);
    let roles = Roles::find(&h, Some("is_fraud"), None, Some("id")).unwrap();
    struct Case {
        name: &'static str,
        header: Header,
        signature: Signature,
        declared: Vec<InputColumns>,
        roles: Roles,
        expect: Result<Vec<(&'static str, Vec<usize>)>, &'static str>,
    }
    let declared = |input: &str, columns: &[&str]| InputColumns {
        input: input.to_owned(),
        columns: columns.iter().map(|c| (*c).to_owned()).collect(),
    };
    let cases = [
        Case {
            name: "the only input takes the free columns in file order",
            header: h.clone(),
            signature: wide.clone(),
            declared: vec![],
            roles: roles.clone(),
            expect: Ok(vec![("features", vec![1, 2, 3])]),
        },
        Case {
            name: "declared columns in the declared order",
            header: h.clone(),
            signature: wide.clone(),
            declared: vec![declared("features", &["c", "a", "b"])],
            roles: roles.clone(),
            expect: Ok(vec![("features", vec![3, 1, 2])]),
        },
        Case {
            name: "one-element inputs take the column of their name",
            header: header(&["country", "x", "amount"]),
            signature: named.clone(),
            declared: vec![],
            roles: Roles::default(),
            expect: Ok(vec![("amount", vec![2]), ("country", vec![0])]),
        },
        Case {
            name: "an unknown declared column is named",
            header: h.clone(),
            signature: wide.clone(),
            declared: vec![declared("features", &["a", "b", "nope"])],
            roles: roles.clone(),
            expect: Err(
                "column \"nope\", which the data set does not have (its columns: id, a, b, c, is_fraud)",
            ),
        },
        Case {
            name: "a declared input the model lacks is named",
            header: h.clone(),
            signature: wide.clone(),
            declared: vec![declared("feature", &["a", "b", "c"])],
            roles: roles.clone(),
            expect: Err(
                "names input \"feature\", which version 1 does not have (its inputs: features)",
            ),
        },
        Case {
            name: "too few declared columns",
            header: h.clone(),
            signature: wide.clone(),
            declared: vec![declared("features", &["a", "b"])],
            roles: roles.clone(),
            expect: Err("gives input \"features\" 2 columns, but version 1 takes 3 values per row"),
        },
        Case {
            name: "free columns of the wrong count",
            header: h.clone(),
            signature: wide.clone(),
            declared: vec![],
            roles: Roles::default(),
            expect: Err(
                "cannot tell which columns feed input \"features\" of version 1 (3 values per row)",
            ),
        },
        Case {
            name: "a varying row shape cannot be read",
            header: h.clone(),
            signature: signature(vec![input("seq", DataType::Fp32, &[-1, -1])]),
            declared: vec![],
            roles: Roles::default(),
            expect: Err("only the first (batch) axis may vary"),
        },
        Case {
            name: "an unreadable type",
            header: header(&["x"]),
            signature: signature(vec![input("x", DataType::Uint8, &[-1])]),
            declared: vec![],
            roles: Roles::default(),
            expect: Err("input \"x\" is UINT8"),
        },
    ];
    for case in cases {
        let got = layout(
            &case.header,
            &case.signature,
            &case.declared,
            &case.roles,
            1,
        );
        match (got, case.expect) {
            (Ok(layout), Ok(expect)) => {
                let expect: Vec<(String, Vec<usize>)> =
                    expect.into_iter().map(|(n, c)| (n.to_owned(), c)).collect();
                assert_eq!(columns_of(&layout), expect, "{}", case.name);
            }
            (Err(e), Err(expect)) => {
                assert!(e.to_string().contains(expect), "{}: {e}", case.name);
                assert!(
                    matches!(
                        e,
                        Error::Refused {
                            reason: "InvalidSpec",
                            ..
                        }
                    ),
                    "{}",
                    case.name
                );
            }
            (got, expect) => panic!("{}: got {got:?}, expected {expect:?}", case.name),
        }
    }
}

#[test]
fn roles_and_header_refuse_what_is_not_there() {
    let h = header(&["a", "b"]);
    let e = Roles::find(&h, Some("label"), None, None).unwrap_err();
    assert!(
        e.to_string()
            .contains("spec.labelColumn names column \"label\""),
        "{e}"
    );
    let twice = Header::new(vec!["a".into(), "a".into()]).unwrap_err();
    assert!(twice.to_string().contains("column \"a\" twice"), "{twice}");
}

#[test]
fn cells_become_elements_or_a_reason() {
    let h = header(&["x", "y", "flag"]);
    let floats = InputLayout {
        name: "f".into(),
        datatype: DataType::Fp32,
        row_shape: vec![2],
        columns: vec![0, 1],
    };
    let mut builder = Builder::new(&floats, 4);
    let records: std::cell::RefCell<Vec<csv::ByteRecord>> = Default::default();
    let row = |cells: &[&str]| {
        records
            .borrow_mut()
            .push(csv::ByteRecord::from(cells.to_vec()));
        records.borrow().len() - 1
    };
    let push = |builder: &mut Builder, input: &InputLayout, i: usize| {
        let records = records.borrow();
        let row = crate::rows::CsvRow {
            record: &records[i],
            line: 2,
        };
        builder.push(input, &row, &h)
    };
    push(&mut builder, &floats, row(&["0.1", " 2 ", "1"])).unwrap();
    assert_eq!(
        push(&mut builder, &floats, row(&["0.5", "", "1"])).unwrap_err(),
        "column \"y\": missing value"
    );
    assert_eq!(
        push(&mut builder, &floats, row(&["abc", "1", "1"])).unwrap_err(),
        "column \"x\": \"abc\" is not a finite number"
    );
    assert!(push(&mut builder, &floats, row(&["NaN", "1", "1"])).is_err());
    // A short row misses its last cells.
    assert_eq!(
        push(&mut builder, &floats, row(&["1"])).unwrap_err(),
        "column \"y\": missing value"
    );
    let tensor = builder.finish(&floats).unwrap();
    assert_eq!(tensor.shape, vec![1, 2]);
    // Parsed through a double, as the online API reads JSON numbers.
    assert_eq!(tensor.data, TensorData::Fp32(vec![0.1f64 as f32, 2.0]));

    let flags = InputLayout {
        name: "flag".into(),
        datatype: DataType::Bool,
        row_shape: vec![],
        columns: vec![2],
    };
    let mut builder = Builder::new(&flags, 2);
    push(&mut builder, &flags, row(&["", "", "TRUE"])).unwrap();
    push(&mut builder, &flags, row(&["", "", "yes"])).unwrap_err();
    push(&mut builder, &flags, row(&["", "", "0"])).unwrap();
    builder.undo_row(&flags);
    let tensor = builder.finish(&flags).unwrap();
    assert_eq!(tensor.data, TensorData::Bool(vec![true]));
}
