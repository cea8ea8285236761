package org.kbnn.demo.core;

import java.io.IOException;
import java.io.InputStream;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.Paths;

/** Test resources from src/test/resources (on the classpath under javac/JUnit and Gradle alike). */
final class TestResources {
    private TestResources() {}

    static InputStream open(String name) throws IOException {
        InputStream in = TestResources.class.getResourceAsStream("/" + name);
        if (in == null) {
            throw new IOException("test resource /" + name + " not on the classpath (src/test/resources)");
        }
        return in;
    }

    static String text(String name) throws IOException {
        return new String(ModelAssets.readAll(open(name)), StandardCharsets.UTF_8);
    }

    static Path path(String name) throws IOException {
        URL url = TestResources.class.getResource("/" + name);
        if (url == null) {
            throw new IOException("test resource /" + name + " not on the classpath (src/test/resources)");
        }
        try {
            return Paths.get(url.toURI());
        } catch (URISyntaxException e) {
            throw new IOException(e);
        }
    }
}
