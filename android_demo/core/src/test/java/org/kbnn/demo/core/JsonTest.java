package org.kbnn.demo.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.Test;

public class JsonTest {

    @Test
    public void parsesEveryValueKind() throws Exception {
        Object v = Json.parse(" {\"a\": [1, -2.5, 3e2, 0.0625, true, false, null, \"x\"], \"b\": {}, \"c\": []}\n");
        @SuppressWarnings("unchecked")
        Map<String, Object> m = (Map<String, Object>) v;
        assertEquals(Arrays.asList("a", "b", "c"), Arrays.asList(m.keySet().toArray()));
        List<?> a = (List<?>) m.get("a");
        assertEquals(1.0, a.get(0));
        assertEquals(-2.5, a.get(1));
        assertEquals(300.0, a.get(2));
        assertEquals(0.0625, a.get(3));
        assertEquals(Boolean.TRUE, a.get(4));
        assertEquals(Boolean.FALSE, a.get(5));
        assertNull(a.get(6));
        assertEquals("x", a.get(7));
        assertTrue(((Map<?, ?>) m.get("b")).isEmpty());
        assertTrue(((List<?>) m.get("c")).isEmpty());
    }

    @Test
    public void numbersRoundTripLikePython() throws Exception {
        // Python's repr(float) is the shortest string that round-trips; Double.parseDouble must
        // give back the same double (model.json normalisation constants depend on it).
        assertEquals(0.1307, (Double) Json.parse("0.1307"), 0.0);
        assertEquals(Double.doubleToLongBits(0.30810001492500305),
                Double.doubleToLongBits((Double) Json.parse("0.30810001492500305")));
        assertEquals(1e-7, (Double) Json.parse("1E-7"), 0.0);
        assertEquals(-0.0, (Double) Json.parse("-0"), 0.0);
        assertEquals(1.7976931348623157e308, (Double) Json.parse("1.7976931348623157e308"), 0.0);
    }

    @Test
    public void decodesEscapesAndSurrogatePairs() throws Exception {
        assertEquals("q\"b\\s/\b\f\n\r\tµ€😀", Json.parse("\"q\\\"b\\\\s\\/\\b\\f\\n\\r\\t\\u00b5\\u20AC\\ud83d\\ude00\""));
        assertEquals("ü unescaped", Json.parse("\"ü unescaped\""));
    }

    @Test
    public void acceptsByteOrderMark() throws Exception {
        assertEquals(Boolean.TRUE, Json.parse("\uFEFFtrue"));
    }

    @Test
    public void rejectsWhatRfc8259Forbids() {
        String[][] cases = {
            {"{\"a\": 1,}", "trailing comma"},
            {"[1, 2,]", "trailing comma"},
            {"{\"a\": 1, \"a\": 2}", "duplicate key \"a\""},
            {"{'a': 1}", "expected a string key"},
            {"[01]", "leading zeros"},
            {"[1.]", "digit after '.'"},
            {"[.5]", "unexpected '.'"},
            {"[1e]", "digit in exponent"},
            {"[NaN]", "unexpected 'N'"},
            {"[Infinity]", "unexpected 'I'"},
            {"[-]", "expected a digit"},
            {"\"tab\there\"", "control character U+0009"},
            {"\"open", "unterminated string"},
            {"\"\\x\"", "invalid escape \\x"},
            {"\"\\u12G4\"", "invalid hex digit"},
            {"{\"a\" 1}", "expected ':'"},
            {"[1 2]", "expected ',' or ']'"},
            {"{\"a\": 1 \"b\": 2}", "expected ',' or '}'"},
            {"{} {}", "after the JSON value"},
            {"// comment\n{}", "unexpected '/'"},
            {"", "unexpected end of input"},
            {"[tru]", "unexpected 't'"},
            {"1e999", "out of range"},
        };
        for (String[] c : cases) {
            try {
                Json.parse(c[0]);
                fail("accepted invalid JSON: " + c[0]);
            } catch (Json.JsonException e) {
                assertTrue("message for " + c[0] + " was: " + e.getMessage(), e.getMessage().contains(c[1]));
            }
        }
    }

    @Test
    public void reportsLineAndColumn() {
        try {
            Json.parse("{\n  \"a\": 1,\n  \"b\": ]\n}");
            fail();
        } catch (Json.JsonException e) {
            assertEquals(3, e.line);
            assertEquals(8, e.column);
            assertTrue(e.getMessage(), e.getMessage().startsWith("line 3, column 8: "));
        }
    }

    @Test
    public void limitsNesting() throws Exception {
        StringBuilder ok = new StringBuilder();
        StringBuilder deep = new StringBuilder();
        for (int i = 0; i < Json.MAX_DEPTH; i++) {
            ok.append('[');
        }
        for (int i = 0; i < Json.MAX_DEPTH; i++) {
            ok.append(']');
        }
        Json.parse(ok.toString());
        for (int i = 0; i <= Json.MAX_DEPTH; i++) {
            deep.append('[');
        }
        try {
            Json.parse(deep.toString());
            fail();
        } catch (Json.JsonException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("nesting deeper than"));
        }
    }
}
