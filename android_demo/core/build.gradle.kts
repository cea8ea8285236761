// The app's logic as a plain Java library: no Android imports, so it compiles and is unit-tested
// on any JVM (in kbnn's CI with javac + Debian's JUnit: android_demo/ci.sh).
plugins {
    `java-library`
}

java {
    sourceCompatibility = JavaVersion.VERSION_1_8
    targetCompatibility = JavaVersion.VERSION_1_8
}

tasks.withType<JavaCompile>().configureEach {
    options.encoding = "UTF-8"
    options.release.set(8) // also rejects JDK APIs newer than Java 8 (Android API 24 has Java 8's)
    options.compilerArgs.addAll(listOf("-Xlint:all,-options,-processing", "-Werror"))
}

dependencies {
    testImplementation("junit:junit:4.13.2")
}
