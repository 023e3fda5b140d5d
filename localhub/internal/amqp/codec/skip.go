package codec

// skip checks and steps over one value without building it: the same
// rules as value, no allocation. SplitSections uses it so that a server
// can re-frame messages it forwards without paying for decoding them.
func (d *decoder) skip(depth int) error {
	code, err := d.byte()
	if err != nil {
		return err
	}
	if code == codeDescribed {
		if depth >= MaxDepth {
			return malformed("nesting deeper than %d", MaxDepth)
		}
		if err := d.skip(depth + 1); err != nil {
			return err
		}
		return d.skip(depth + 1)
	}
	return d.skipPrimitive(code, depth)
}

// width returns the fixed size of a primitive after its constructor, or -1
// for variable-width and compound types.
func width(code byte) int {
	switch code {
	case codeNull, codeTrue, codeFalse, codeUint0, codeUlong0, codeList0:
		return 0
	case codeBool, codeUbyte, codeByte, codeSmallUint, codeSmallUlong, codeSmallInt, codeSmallLong:
		return 1
	case codeUshort, codeShort:
		return 2
	case codeUint, codeInt, codeFloat, codeChar, codeDecimal32:
		return 4
	case codeUlong, codeLong, codeDouble, codeTimestamp, codeDecimal64:
		return 8
	case codeDecimal128, codeUUID:
		return 16
	}
	return -1
}

func (d *decoder) skipPrimitive(code byte, depth int) error {
	if w := width(code); w >= 0 {
		p, err := d.need(w)
		if err != nil {
			return err
		}
		if code == codeBool && p[0] > 1 {
			return malformed("boolean byte 0x%02x", p[0])
		}
		return nil
	}
	switch code {
	case codeVbin8, codeStr8, codeSym8:
		_, err := d.variable(true)
		return err
	case codeVbin32, codeStr32, codeSym32:
		_, err := d.variable(false)
		return err
	case codeList8, codeList32, codeMap8, codeMap32:
		if depth >= MaxDepth {
			return malformed("nesting deeper than %d", MaxDepth)
		}
		body, count, err := d.compound(code == codeList8 || code == codeMap8)
		if err != nil {
			return err
		}
		if (code == codeMap8 || code == codeMap32) && count%2 != 0 {
			return malformed("map with odd count %d", count)
		}
		if count > len(body.b) {
			return malformed("compound count %d exceeds its %d bytes", count, len(body.b))
		}
		for range count {
			if err := body.skip(depth + 1); err != nil {
				return err
			}
		}
		d.budget = body.budget
		if body.off != len(body.b) {
			return malformed("%d bytes after the last element", len(body.b)-body.off)
		}
		return nil
	case codeArray8, codeArray32:
		if depth >= MaxDepth {
			return malformed("nesting deeper than %d", MaxDepth)
		}
		body, count, err := d.compound(code == codeArray8)
		if err != nil {
			return err
		}
		elem, err := body.byte()
		if err != nil {
			return err
		}
		if elem == codeDescribed {
			if err := body.skip(depth + 1); err != nil {
				return err
			}
			if elem, err = body.byte(); err != nil {
				return err
			}
		}
		if codeType(elem) == TypeInvalid {
			return malformed("array element constructor 0x%02x", elem)
		}
		if zeroWidth(elem) {
			if count > body.budget {
				return malformed("array of %d zero-width elements", count)
			}
			body.budget -= count
		} else if count > len(body.b)-body.off {
			return malformed("array count %d exceeds its %d bytes", count, len(body.b)-body.off)
		}
		if w := width(elem); w > 0 && elem != codeBool {
			// Fixed-width elements: one bounds check for all.
			if _, err := body.need(w * count); err != nil {
				return err
			}
		} else {
			for range count {
				if err := body.skipPrimitive(elem, depth+1); err != nil {
					return err
				}
			}
		}
		d.budget = body.budget
		if body.off != len(body.b) {
			return malformed("array has %d bytes after its %d elements", len(body.b)-body.off, count)
		}
		return nil
	}
	return malformed("unknown format code 0x%02x at offset %d", code, d.off-1)
}

// sectionCode reads a section's descriptor without allocating for the
// usual ulong form.
func (d *decoder) sectionCode() (uint64, error) {
	code, err := d.byte()
	if err != nil {
		return 0, err
	}
	if code != codeDescribed {
		return 0, malformed("message section is not a described value (0x%02x)", code)
	}
	start := d.off
	c, err := d.byte()
	if err != nil {
		return 0, err
	}
	switch c {
	case codeSmallUlong:
		b, err := d.byte()
		if err != nil {
			return 0, err
		}
		if b >= SectionHeader && b <= SectionFooter {
			return uint64(b), nil
		}
	case codeUlong:
		v, err := d.u64()
		if err != nil {
			return 0, err
		}
		if v >= SectionHeader && v <= SectionFooter {
			return v, nil
		}
	default:
		d.off = start
		desc, err := d.value(1)
		if err != nil {
			return 0, err
		}
		if s, ok := desc.(Symbol); ok {
			if code, ok := sectionNames[s]; ok {
				return code, nil
			}
		}
	}
	return 0, malformed("unknown message section descriptor at offset %d", start)
}
